"""What the Google Sheet backend and the Gmail drafter share: credentials, HTTP, errors.

- :mod:`.credentials` loads a service-account key or an authorized-user token file and, with an
  endpoint, sends token refreshes there (google-auth ignores an authorized-user file's
  ``token_uri``: GOOGLE-NOTES.md section 9).
- :mod:`.transport` is the HTTP layer: explicit connect and read timeouts, our own bounded retry
  (backoff, jitter, ``Retry-After``), an endpoint rewrite for emulators and tests, and for Gmail
  an allowlist of the only calls the bridge may make.
- :mod:`.errors` turns Google's answers into one line a person can act on; response bodies,
  which can echo cell values, never leave this package.
"""
