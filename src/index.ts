/** App-wide setup, loaded first by the Functions host (package.json `main`). */
import { app } from '@azure/functions';

app.setup({ enableHttpStream: false });
