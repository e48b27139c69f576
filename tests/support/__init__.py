"""Helpers and fixtures the tests share; no test module imports another.

- ``fakes``: a made-up store's settings and a clock that never waits (mocked tests)
- ``helpers``: the real CLI in subprocesses, kills part-way, state and config files
- ``targets``: reading back what an output target holds
- ``webhook``: ``miva-sync listen`` as a real process
- ``hostile``: the clean-failure contract the hostile-input tests check
- ``chaos``: the trial, store activity and contract the chaos suites share
- ``examples``: the examples of every ``--help`` and of README.md's code blocks
- ``schemas``: the published JSON Schemas of the ``--json`` objects, and validation
- ``sandbox_fixtures``, ``pg_fixtures``, ``pull_fixtures``: sandbox stores and a
  raw client, a throwaway PostgreSQL server, stand-ins for the pull engine
"""
