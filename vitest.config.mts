import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { realHostSetup } from './test/support/runtimes';

// The end-to-end suites run once per runtime (test/support/runtimes.ts); they never ask which.
const END_TO_END = ['test/e2e/**/*.test.ts', 'test/reliability/**/*.test.ts', 'test/browser/**/*.test.ts'];

// REQUIRE_REAL_HOST=1 (set by .ci/run) turns "not available, skipped" into a failure.
const realHost = realHostSetup();
const projects: TestProjectInlineConfiguration[] = [
  { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: END_TO_END } },
  { extends: true, test: { name: 'local', include: END_TO_END, env: { TEST_RUNTIME: 'local' } } },
];
if (realHost.kind !== 'unavailable') {
  projects.push({ extends: true, test: { name: 'real', include: END_TO_END, env: { TEST_RUNTIME: 'real' }, globalSetup: ['test/support/stage-real-host.ts'] } });
} else if (process.env.REQUIRE_REAL_HOST === '1') {
  throw new Error(`REQUIRE_REAL_HOST=1 but the real Functions host is not available: ${realHost.reason}.`);
} else {
  console.warn(`\nThe end-to-end suites on the real Functions host are skipped: ${realHost.reason}. Set FUNCTIONS_HOST_DIR or put Core Tools on PATH to run them.\n`);
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // End-to-end suites start hosts and Azurite; keep parallelism within the 2-core budget.
    maxWorkers: 2,
    projects,
  },
});
