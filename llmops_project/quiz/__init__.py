"""What the quiz-answer-generator's entry points share (nothing here is on a slide).

* ``questions``  - load and check ``questions.csv`` and ``expectations.json``
* ``options``    - the command-line options both generation entry points take
* ``provider``   - the OpenAI-compatible provider: API key, base URL, retries
* ``search``     - the search backends behind the agent's ``web_search_tool``
* ``generation`` - THE generation loop both generation entry points hand their ``answer`` to
* ``dataset``    - the exam (questions + correctness guidelines) as an MLflow evaluation dataset
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
QUESTIONS_CSV = PROJECT_DIR / "questions.csv"
EXPECTATIONS_JSON = PROJECT_DIR / "expectations.json"
PROMPTS_DIR = PROJECT_DIR / "prompts"
CORPUS_JSON = PROJECT_DIR / "corpus" / "reference_notes.json"
