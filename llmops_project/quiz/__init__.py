"""What the quiz-answer-generator's entry points share.

* ``questions``  - load and validate ``questions.csv`` and ``expectations.json``
* ``prompts``    - the prompt registry: register ``prompts/*.txt``, load them by alias
* ``provider``   - the OpenAI-compatible provider (API key, base URL, retries)
* ``search``     - the agent's ``web_search_tool`` and its two search backends
* ``generation`` - THE generation loop both generation entry points use
* ``scorers``    - the talk's evaluation criteria
* ``cli``        - command-line parsing with the MLproject's defaults, one-line errors
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
MLPROJECT_FILE = PROJECT_DIR / "MLproject"
QUESTIONS_CSV = PROJECT_DIR / "questions.csv"
EXPECTATIONS_JSON = PROJECT_DIR / "expectations.json"
PROMPTS_DIR = PROJECT_DIR / "prompts"
CORPUS_JSON = PROJECT_DIR / "corpus" / "reference_notes.json"


class QuizError(Exception):
    """A problem the user can fix. Its message reads '<what is wrong>. <how to fix it>'."""
