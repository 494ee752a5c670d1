"""Regenerate the malformed-input corpus: one small file per problem (run from this folder).

`expected.yaml` holds, for each case file, the one error line `check` and `train` must print; review it by
hand after regenerating (`python make_corpus.py`), it is the specification.
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def chat(user="What is 2+2?", answer="4"):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def msgs(*pairs, **extra):
    return {"messages": [{"role": r, "content": c, **extra.get(str(i), {})} for i, (r, c) in enumerate(pairs)]}


GOOD = chat("Where is my parcel?", "It left the warehouse today.")
JSONL = {
    "invalid-json": [GOOD, '{"messages": [oops'],
    "not-an-object": [GOOD, "[1, 2]"],
    "no-usable-field": [GOOD, {"question": "q", "answer": "a"}],
    "messages-not-a-list": [{"messages": "hello"}],
    "messages-empty": [GOOD, {"messages": []}],
    "message-not-an-object": [{"messages": ["hi", {"role": "assistant", "content": "yo"}]}],
    "missing-role": [{"messages": [{"content": "hi"}, {"role": "assistant", "content": "yo"}]}],
    "unknown-role": [GOOD, msgs(("user", "hi"), ("bot", "yo"))],
    "missing-content": [{"messages": [{"role": "user"}, {"role": "assistant", "content": "yo"}]}],
    "content-number": [
        GOOD,
        GOOD | {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "five"}]},
    ],
    "content-list": [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "yo"},
            ]
        }
    ],
    "system-not-first": [msgs(("user", "hi"), ("system", "be brief"), ("assistant", "yo"))],
    "assistant-first": [msgs(("assistant", "hello"), ("user", "hi"), ("assistant", "yo"))],
    "two-user-turns": [GOOD, msgs(("user", "hi"), ("user", "again"), ("assistant", "yo"))],
    "trailing-user": [msgs(("user", "hi"), ("assistant", "yo"), ("user", "thanks"))],
    "no-assistant": [msgs(("system", "be brief"), ("user", "hi"))],
    "empty-assistant": [GOOD, GOOD, chat("Hi", "   ")],
    "weight-two": [msgs(("user", "hi"), ("assistant", "yo"), **{"1": {"weight": 2}})],
    "weight-boolean": [msgs(("user", "hi"), ("assistant", "yo"), **{"1": {"weight": True}})],
    "weight-string": [msgs(("user", "hi"), ("assistant", "yo"), **{"1": {"weight": "1"}})],
    "all-weights-zero": [msgs(("user", "hi"), ("assistant", "yo"), **{"1": {"weight": 0}})],
    "prompt-number": [{"prompt": 7, "completion": "seven"}],
    "prompt-empty": [{"prompt": "Where is my parcel?", "completion": "Today."}, {"prompt": "  ", "completion": "x"}],
    "completion-empty": [{"prompt": "hi", "completion": ""}],
    "completion-list": [{"prompt": "hi", "completion": ["yo"]}],
    "chat-prompt-ends-with-assistant": [
        {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "completion": "x"}
    ],
    "system-given-twice": [
        {
            "system": "be brief",
            "prompt": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],
            "completion": "yo",
        }
    ],
    "alpaca-instruction-empty": [{"instruction": "", "input": "", "output": "x"}],
    "alpaca-output-number": [{"instruction": "Add 2 and 2", "output": 4}],
    "alpaca-input-number": [{"instruction": "Add", "input": 22, "output": "4"}],
    "system-number": [{"prompt": "hi", "completion": "yo", "system": 1}],
    "text-empty": [{"text": "Some text."}, {"text": ""}],
    "text-and-chat-mixed": [GOOD, {"text": "raw text for pre-training"}],
    "conversations-bad-role": [
        {"conversations": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ],
}


def main() -> None:
    n = 0

    def name(stem: str, ext: str) -> Path:
        nonlocal n
        n += 1
        return HERE / f"{n:02d}-{stem}.{ext}"

    for stem, rows in JSONL.items():
        name(stem, "jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    name("invalid-utf8", "jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"text": "caf\xe9"}\n')
    name("empty", "jsonl").write_bytes(b"")
    name("blank-lines-only", "jsonl").write_text("\n   \n\n")
    name("invalid", "json").write_text('[{"text": "a"},\n {"text": "b"\n]\n')
    name("empty-list", "json").write_text("[]\n")
    name("scalar", "json").write_text('"just a string"\n')
    name("record-not-an-object", "json").write_text(json.dumps([GOOD, "oops"]) + "\n")
    name("two-lists", "json").write_text(json.dumps({"train": [GOOD], "test": [GOOD]}) + "\n")
    name("ragged-row", "csv").write_text("prompt,completion\nhi,yo\nhello,there,extra\n")
    name("duplicate-header", "csv").write_text("prompt,prompt\nhi,yo\n")
    name("header-only", "csv").write_text("prompt,completion\n")
    name("empty-cell", "csv").write_text("prompt,completion\nhi,yo\n,nothing asked\n")
    name("unterminated-quote", "csv").write_text('prompt,completion\nhi,yo\n"hello,there\n')
    name("ragged-row", "tsv").write_text("prompt\tcompletion\nhi\tyo\nonly one field\n")
    name("not-parquet", "parquet").write_bytes(b"PAR1 this is not really parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"prompt": ["hi", "hello"], "completion": ["yo", None]})
    pq.write_table(table, name("missing-completion", "parquet"))
    name("unsupported", "txt").write_text("hello\n")
    (HERE / "good.jsonl").write_text(
        "".join(json.dumps(chat(f"What is {i} plus 1?", str(i + 1))) + "\n" for i in range(6))
    )
    (HERE / "qa.jsonl").write_text(json.dumps({"question": "Where is my parcel?", "reply": "On its way."}) + "\n")
    (HERE / "eval-bad.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps(msgs(("user", "only a question"))) + "\n")
    configs = {
        "unknown-key": "data:\n  train: good.jsonl\ntrain:\n  max_steps: 1\n  lrr: 1.0e-3\n",
        "negative-lr": "data:\n  train: good.jsonl\ntrain:\n  lr: -0.1\n",
        "invalid-yaml": "data:\n  train: good.jsonl\n train: [\n",
        "eval-and-fraction": "data:\n  train: good.jsonl\n  eval: good.jsonl\n  eval_fraction: 0.1\n",
        "unknown-model": "model: no-such-model\ndata:\n  train: good.jsonl\n",
        "missing-train-file": "data:\n  train: nowhere.jsonl\n",
        "bad-eval-record": "data:\n  train: good.jsonl\n  eval: eval-bad.jsonl\n",
        "columns-unknown-field": "data:\n  train: good.jsonl\n  columns: {answer: output}\n",
        "max-length-too-small": "data:\n  train: good.jsonl\ntrain:\n  max_length: 10\n",
        "no-data-section": "method: lora\n",
        "bad-method": "data:\n  train: good.jsonl\nmethod: qlora\n",
        "eval-fraction-out-of-range": "data:\n  train: good.jsonl\n  eval_fraction: 1.5\n",
        "columns-point-nowhere": "data:\n  train: qa.jsonl\n  columns: {prompt: question, completion: answer}\n",
        "model-folder-without-config": "model: good.jsonl.d\ndata:\n  train: good.jsonl\n",
    }
    for stem, text in configs.items():
        name(stem, "yaml").write_text(text)
    (HERE / "good.jsonl.d").mkdir(exist_ok=True)
    (HERE / "good.jsonl.d" / "weights.bin").write_bytes(b"\0")


if __name__ == "__main__":
    main()
