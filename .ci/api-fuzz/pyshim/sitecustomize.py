"""Loaded by the schemathesis process only (run.sh puts this folder on PYTHONPATH).

CPython before 3.11.8 can raise SystemError("AST constructor recursion depth
mismatch") from `ast.parse` (CPython gh-106905). Hypothesis parses source to
*describe* a filter's lambda (a name for its reprs), and schemathesis's
coverage phase filters strategies, so the bug can abort a fuzz run with an
internal error that says nothing about the API. The description is cosmetic:
on that error it falls back to hypothesis's own placeholder. Nothing else is
touched, and on a fixed Python this does nothing.
"""

import sys

if sys.version_info < (3, 11, 8):
    try:
        from hypothesis.internal import lambda_sources as _sources

        _describe = _sources._lambda_description

        def _lambda_description(f, *args, **kwargs):
            try:
                return _describe(f, *args, **kwargs)
            except SystemError:
                return "lambda <unknown>: <unknown>"

        _sources._lambda_description = _lambda_description
    except Exception:  # an unexpected hypothesis layout: leave it as it is
        pass
