"""serve.py's parts, one concern a module (serve.py is the entry point and re-exports the public names).

- ``settings``: the server's fixed choices (model file, context, threads, the free-text policy).
- ``normalise``: OpenAI requests → llama.cpp's dialect (pure functions).
- ``middleware``: the ASGI middleware that applies ``normalise`` to every chat completion.
- ``decoding``: the decoding rules (what a request asks for, never a changed message; pure functions).
- ``budget``: JSON-schema budget maths, so structured output always completes (pure functions).
- ``chat_handler``: the llama.cpp chat handler (tools, structured output, text) and the one
  llama.cpp global it patches. Imports llama_cpp: only loaded when the server starts.
- ``sampling``: greedy decoding under a grammar, the grammar asked about the likeliest tokens first
  (the same tokens as llama.cpp's chain, sooner). Imports llama_cpp: installed when the server starts.
- ``process``: the model file, the app, the port check and starting serve.py in the background.
"""
