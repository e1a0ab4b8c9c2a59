// Start-up checks of the local host: what it refuses (unsupported triggers and bindings, bad routes,
// an unbuilt app, missing storage, a busy port) exits non-zero with a message naming the problem,
// and an HTTP-only app starts without any storage.
import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { runHostExpectingExit, startHost, stopAllHosts } from '../support/host';

afterAll(stopAllHosts);

describe('start-up', () => {
  it('refuses unsupported triggers, bindings and routes, naming each function', async () => {
    const result = await runHostExpectingExit({ appRoot: 'test/fixtures/devhost-unsupported' });
    expect(result.code).toBe(1);
    expect(result.logs).toMatch(/Function 'nightly' uses trigger 'timerTrigger'/);
    expect(result.logs).toMatch(/Function 'enqueue' uses output binding 'queue'/);
    expect(result.logs).not.toMatch(/Function '(orchestrator|activity)'/); // Durable triggers are supported
    expect(result.logs).toMatch(/Function 'badRoute': route "bad\/\{x": unclosed "\{"/);
    expect(result.logs).not.toMatch(/'fine'/);
    expect(result.logs).not.toMatch(/Local host listening/);
  });

  it('says to build when package.json main matches no file', async () => {
    const result = await runHostExpectingExit({ appRoot: 'test/fixtures/devhost-unbuilt' });
    expect(result.code).toBe(1);
    expect(result.logs).toMatch(/matches no files .*\(npm run build\)/);
  });

  it('explains how to configure storage when entities need it and none is set', async () => {
    // An empty variable in the environment wins over local.settings.json, like any other setting.
    const result = await runHostExpectingExit({ appRoot: 'test/fixtures/devhost-app', env: { AzureWebJobsStorage: '' } });
    expect(result.code).toBe(1);
    expect(result.logs).toMatch(/AzureWebJobsStorage is not set.*UseDevelopmentStorage=true/);
  });

  it('reports a port that is already in use', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const result = await runHostExpectingExit({ appRoot: 'test/fixtures/devhost-stream-app', port });
      expect(result.code).toBe(1);
      expect(result.logs).toMatch(new RegExp(`Port ${port} is already in use`));
    } finally {
      blocker.close();
    }
  });

  it('starts an HTTP-only app without storage and stops cleanly on SIGTERM', async () => {
    const host = await startHost({ appRoot: 'test/fixtures/devhost-stream-app', env: { AzureWebJobsStorage: undefined } });
    expect(host.logs()).not.toMatch(/task hub/);
    expect((await fetch(`${host.url}/api/nothing`)).status).toBe(204);
    const durable = await fetch(`${host.url}/runtime/webhooks/durabletask/entities/x/y`);
    expect(durable.status).toBe(501);
    expect(await host.stop()).toEqual({ code: 0, signal: null });
  });
});
