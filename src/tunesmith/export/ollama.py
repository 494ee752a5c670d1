"""An Ollama Modelfile beside a GGUF: the chat template in Ollama's Go template syntax, system prompt, stops.

Ollama cannot run the Jinja template embedded in the GGUF for every model, so the templates tunesmith knows
(ChatML, as SmolLM2 uses, and tunesmith's plain template for base models) are written out explicitly.
"""

from __future__ import annotations

from tunesmith.data.types import Message
from tunesmith.render import PLAIN_TEMPLATE, _apply, stop_token_ids, template_of

CHATML_GO = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
    "{{ end }}{{- end }}<|im_start|>assistant\n"
)
PLAIN_GO = (
    "{{- if .System }}{{ .System }}\n\n{{ end }}"
    '{{- range .Messages }}{{- if eq .Role "user" }}### User:\n{{ .Content }}\n\n'
    '{{ else if eq .Role "assistant" }}### Assistant:\n{{ .Content }}EOS\n\n{{ end }}{{- end }}### Assistant:\n'
)


def default_system_prompt(tokenizer) -> str | None:
    """The system prompt a ChatML template inserts when a conversation has none (SmolLM2 has one)."""
    text = _apply(tokenizer, [Message("user", "x")], generation_prompt=False)
    head = "<|im_start|>system\n"
    if text.startswith(head) and "<|im_end|>" in text:
        return text[len(head) : text.index("<|im_end|>")]
    return None


def modelfile(gguf_name: str, tokenizer, *, system_prompt: str | None, run_name: str) -> str:
    """Text of an Ollama Modelfile that runs `gguf_name` as tunesmith does (same template, system, stops)."""
    template = template_of(tokenizer)
    lines = [
        f"# Ollama Modelfile for the tunesmith run '{run_name}'. Use: ollama create {run_name} -f Modelfile",
        f"FROM ./{gguf_name}",
    ]
    if "<|im_start|>" in template:
        lines.append(f'TEMPLATE """{CHATML_GO}"""')
        system = system_prompt if system_prompt is not None else default_system_prompt(tokenizer)
    elif template == PLAIN_TEMPLATE:
        lines.append(f'TEMPLATE """{PLAIN_GO.replace("EOS", tokenizer.eos_token or "")}"""')
        system = system_prompt
    else:
        lines.append("# no TEMPLATE: Ollama reads the chat template embedded in the GGUF file")
        system = system_prompt
    if system:
        lines.append(f'SYSTEM """{system}"""')
    for token in tokenizer.convert_ids_to_tokens(stop_token_ids(tokenizer)):
        lines.append(f'PARAMETER stop "{token}"')
    return "\n".join(lines) + "\n"
