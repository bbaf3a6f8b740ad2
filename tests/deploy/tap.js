// tap.js -- numbered TAP lines for the deployment checks, which
// tests/summary.py counts one by one, and the summary line that ends a script.
'use strict';

// tests/deploy/node_modules comes from `npm ci --prefix tests/deploy`
// (package-lock.json pins every version); tests/run does it.
function requirePackages(names) {
  for (const m of names) {
    try {
      require.resolve(m);
    } catch (e) {
      console.log(`not ok - npm package ${m} is missing: run  npm ci --prefix tests/deploy`);
      process.exit(1);
    }
  }
}

function tap(name) {
  let failed = 0;
  let passed = 0;
  return {
    check(ok, what, detail) {
      const n = passed + failed + 1;
      if (ok) {
        passed++;
        console.log(`ok ${n} - ${what}`);
      } else {
        failed++;
        console.log(`not ok ${n} - ${what}${detail ? `: ${detail}` : ''}`);
      }
      return ok;
    },
    // Prints the summary and exits: 1 if a check failed (or `abort`), else 0.
    finish(abort) {
      console.log(`${name}: ${passed} checks passed, ${failed} failed`);
      process.exit(failed || abort ? 1 : 0);
    },
  };
}

module.exports = { requirePackages, tap };
