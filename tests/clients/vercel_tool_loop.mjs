// The Vercel AI SDK: generateText on the Responses API (@ai-sdk/openai's responses model) with a
// tool, two steps: the model calls the tool, the SDK runs it and sends its result back, the model
// answers. Prints one JSON object: the answer, the steps, and the tool results the SDK produced.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, tool } from "ai";
import { z } from "zod";

const provider = createOpenAI({
  baseURL: `${process.env.TOLLGATE_BASE_URL}/v1`,
  apiKey: process.env.TOLLGATE_API_KEY,
});

const result = await generateText({
  model: provider.responses(process.env.TOLLGATE_MODEL),
  prompt: "What is the weather in Paris?",
  maxRetries: 0,
  stopWhen: stepCountIs(2),
  tools: {
    get_weather: tool({
      description: "The weather in a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => `sunny in ${city}`,
    }),
  },
});

console.log(JSON.stringify({
  text: result.text,
  steps: result.steps.length,
  toolResults: result.steps.flatMap((step) => step.toolResults.map((r) => r.output)),
}));
