import { z } from 'zod';
import { defineTool } from './tool';

export const getCurrentTime = defineTool({
  name: 'get_current_time',
  description: 'Returns the current date and time in UTC (ISO-8601).',
  input: z.object({}),
  run: async (_args, ctx) => ({ utc: ctx.now().toISOString() }),
});
