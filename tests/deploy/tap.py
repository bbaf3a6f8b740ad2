"""tap.py -- numbered TAP lines for the deployment checks, which
tests/summary.py counts one by one, and the summary line that ends a script."""


class Tap:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok {self.passed + self.failed} - {what}")
        else:
            self.failed += 1
            print(f"not ok {self.passed + self.failed} - {what}" + (f": {detail}" if detail else ""))
        return ok

    def finish(self, skipped=False):
        """Prints the summary; the exit status: 1 if a check failed, else 77
        (meson's skipped) when `skipped`, else 0."""
        print(f"{self.name}: {self.passed} checks passed, {self.failed} failed")
        return 1 if self.failed else 77 if skipped else 0
