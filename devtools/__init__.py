"""Maintainer tooling shared by the tests, the benchmarks, ``tracking_server/check_stack.py`` and
``docs/ui_tour.py``. No example folder imports it: each example stays self-contained.

* ``devtools.processes``: ``free_port``, the venv-on-PATH environment (``venv_env``),
  ``background_server``, ``model_server``, ``stop_process``, ``post_json``, ``load_average``.
* ``devtools.projects``: run an example the way a student does (``run_project``, ``run_script``,
  ``run_command``, ``run_printed``) and read back what it logged (``Store``, ``ProjectResult``);
  ``printed_commands`` reads the "Next, ..." lines the scripts print.
* ``devtools.openai_server``: ``FakeOpenAIServer``, the deterministic OpenAI-compatible test server.

The pytest fixtures built on these stay in ``tests/`` (``conftest.py``, ``fixtures_llm.py``,
``fixtures_stack.py``); ``tests/harness.py`` re-exports this package for the test files.
"""
