// The openai Node SDK against the gateway: a chat completion, a chat stream and a response.
// Prints one JSON object: what each call gave the user.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.TOLLGATE_BASE_URL}/v1`,
  apiKey: process.env.TOLLGATE_API_KEY,
  maxRetries: 0,
});
const model = process.env.TOLLGATE_MODEL;
const messages = [{ role: "user", content: "say hi" }];

const completion = await client.chat.completions.create({ model, messages });
let streamed = "";
const stream = await client.chat.completions.create({
  model, messages, stream: true, stream_options: { include_usage: true },
});
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
const response = await client.responses.create({ model, input: "say hi" });

console.log(JSON.stringify({
  chat: completion.choices[0].message.content,
  stream: streamed,
  responses: response.output_text,
}));
