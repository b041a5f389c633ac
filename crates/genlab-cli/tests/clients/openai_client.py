"""The official `openai` package against a live `genlab serve`: completions, chat completions,
each whole and streamed, the model list, and an error the client raises as OpenAI's own.
Run by crates/genlab-cli/tests/cli/serve.rs:  python openai_client.py BASE_URL TEXT_MODEL
Exits non-zero (an assertion) when the server's answers are not what the client expects."""
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)

ids = [m.id for m in client.models.list()]
assert model in ids, ids

# A completion, whole: the same seed gives the same text.
a = client.completions.create(model=model, prompt="ROMEO:", max_tokens=12, temperature=0.8, top_p=0.9, seed=7)
b = client.completions.create(model=model, prompt="ROMEO:", max_tokens=12, temperature=0.8, top_p=0.9, seed=7)
assert a.object == "text_completion" and a.model == model, a
assert a.choices[0].text == b.choices[0].text and len(a.choices[0].text) > 0, (a, b)
assert a.choices[0].finish_reason in ("length", "stop"), a
assert a.usage.completion_tokens > 0 and a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens

# Streamed: the pieces, joined, are the whole completion of the same seed.
pieces = []
finish = None
for chunk in client.completions.create(model=model, prompt="ROMEO:", max_tokens=12, temperature=0.8, top_p=0.9, seed=7, stream=True):
    pieces.append(chunk.choices[0].text)
    finish = chunk.choices[0].finish_reason or finish
assert len([p for p in pieces if p]) >= 3, pieces
assert "".join(pieces) == a.choices[0].text, (pieces, a.choices[0].text)
assert finish == a.choices[0].finish_reason, finish

# A stop string ends the text before it.
s = client.completions.create(model=model, prompt="ROMEO:", max_tokens=40, seed=3, stop=["e"])
assert "e" not in s.choices[0].text, s

# Chat, whole and streamed.
chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Speak, friend."}], max_tokens=10, seed=1)
assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant", chat
content = chat.choices[0].message.content
assert len(content) > 0, chat
streamed = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Speak, friend."}], max_tokens=10, seed=1, stream=True
    )
)
assert streamed == content, (streamed, content)

# A refusal arrives as OpenAI's error, naming the field.
try:
    client.completions.create(model=model, prompt="ROMEO:", max_tokens=10, temperature=5.0)
    raise AssertionError("temperature 5 was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400 and e.body["param"] == "temperature", e.body
try:
    client.completions.create(model="no-such-model", prompt="x")
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.body["param"] == "model", e.body

print("openai client: completions, streams, chat and errors as expected")
