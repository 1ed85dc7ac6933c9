"""A small job board wired to applyq: a candidate applies to a job and sees the outcome.

It uses the library route: the board's ``jobboard_application`` row and applyq's submission commit in one
transaction (``Applyq.enqueue(..., session=session)``), and the outcome comes back as a signed webhook at
``POST /webhooks/applyq``. See ``README.md`` here to run it against the sandbox.
"""
