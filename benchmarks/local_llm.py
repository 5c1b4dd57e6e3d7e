"""Latency of the local model, as the llmops_project uses it: answers, and judges' verdicts.

Start the server first (make local-llm), then from the repository root:

    .venv/bin/python benchmarks/local_llm.py [--base-url http://127.0.0.1:8080/v1] [--repeat 5]

Prints, per kind of request, the median and worst wall time and the tokens generated per second.
"""

import argparse
import statistics
import time

from openai import OpenAI

JUDGE_FORMAT = {  # the response_format MLflow's judges send
    "type": "json_schema",
    "json_schema": {
        "name": "JudgeEvaluation",
        "strict": True,
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["rationale", "result"],
            "properties": {"rationale": {"type": "string"}, "result": {"type": "string"}},
        },
    },
}
REQUESTS = {
    "answer (max_tokens=200)": {
        "max_tokens": 200,
        "messages": [
            {"role": "system", "content": "You are a teaching assistant for a software engineering course."},
            {"role": "user", "content": "What is a version control system? Answer in a short paragraph."},
        ],
    },
    "judge verdict (json_schema)": {
        "response_format": JUDGE_FORMAT,
        "messages": [
            {
                "role": "system",
                "content": "You judge answers. Reply in JSON with a short 'rationale' and a 'result' of yes or no.",
            },
            {
                "role": "user",
                "content": "Guideline: the answer should be in English.\nAnswer: Git is a "
                "distributed version control system.\nDoes the answer meet the guideline?",
            },
        ],
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="local")

    for name, request in REQUESTS.items():
        seconds, tokens = [], 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            response = client.chat.completions.create(model="gpt-4.1-mini", **request)
            seconds.append(time.perf_counter() - start)
            tokens += response.usage.completion_tokens
        print(
            f"{name:30s} median {statistics.median(seconds):5.2f} s   worst {max(seconds):5.2f} s   "
            f"{tokens / sum(seconds):5.1f} tokens/s   ({args.repeat} requests)"
        )


if __name__ == "__main__":
    main()
