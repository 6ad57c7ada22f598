// The @anthropic-ai/sdk Node SDK against the gateway: a message and a streamed message.
// Prints one JSON object: what each call gave the user.
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({
  baseURL: process.env.TOLLGATE_BASE_URL,
  apiKey: process.env.TOLLGATE_API_KEY,
  maxRetries: 0,
});
const request = {
  model: process.env.TOLLGATE_MODEL,
  max_tokens: 100,
  messages: [{ role: "user", content: "say hi" }],
};

const message = await client.messages.create(request);
let streamed = "";
const stream = client.messages.stream(request);
stream.on("text", (text) => { streamed += text; });
await stream.finalMessage();

console.log(JSON.stringify({ message: message.content[0].text, stream: streamed }));
