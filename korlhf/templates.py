"""Korean prompt/chat templates, stored as Jinja chat templates on the tokenizer.

Every template is a chat template, so SFT, PPO rollouts, generation, chat and serving all render
prompts with the one saved in the model directory. Assistant turns sit inside
``{% generation %}`` markers, which is what TRL's ``assistant_only_loss`` needs. EOS comes from the
tokenizer (``eos_token``), never from a hard-coded id.
"""

from __future__ import annotations

from korlhf.errors import KorlhfError

# A blank line separates an answer from the next question (multi-turn), and nothing trails the last.
_SEP_AFTER_ANSWER = "{%- set SEP = '\\n\\n' if not loop.first and messages[loop.index0 - 1]['role'] == 'assistant' else '' -%}"

# KoChatGPT's PROMPT_DICT["prompt_no_input"], one block per turn.
KOCHATGPT = (
    "{%- for m in messages -%}" + _SEP_AFTER_ANSWER
    + "{%- if m['role'] == 'system' -%}{{ m['content'] + '\\n\\n' }}"
    "{%- elif m['role'] == 'user' -%}{{ SEP }}### Instruction(명령어):\n{{ m['content'] }}\n\n### Response(응답):"
    "{%- elif m['role'] == 'assistant' -%}{% generation %} {{ m['content'] }}{{ eos_token }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# KoAlpaca's "### 질문: ... ### 답변:" format.
KOALPACA = (
    "{%- for m in messages -%}" + _SEP_AFTER_ANSWER
    + "{%- if m['role'] == 'system' -%}{{ m['content'] + '\\n\\n' }}"
    "{%- elif m['role'] == 'user' -%}{{ SEP }}### 질문: {{ m['content'] }}\n\n### 답변:"
    "{%- elif m['role'] == 'assistant' -%}{% generation %} {{ m['content'] }}{{ eos_token }}{% endgeneration %}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# ChatML-style; the generation prompt opens an assistant turn.
CHATML = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}<|im_start|>assistant\n"
    "{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{{ '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

TEMPLATES = {"kochatgpt": KOCHATGPT, "koalpaca": KOALPACA, "chatml": CHATML}


def get_template(name: str) -> str:
    if name not in TEMPLATES:
        raise KorlhfError(f"unknown template {name!r}; choose one of: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def template_name(chat_template: str | None) -> str | None:
    """The name of a known template, or None for a model's own template."""
    for name, text in TEMPLATES.items():
        if chat_template == text:
            return name
    return None


def prepare_tokenizer(tokenizer, template: str | None = None):
    """Give ``tokenizer`` a pad token distinct from EOS and, if asked, a named chat template.

    A pad equal to EOS hides EOS from the loss (collators mask pads), so the model never learns
    to stop; when a tokenizer has no pad token, or its pad is its EOS, we add ``<pad>``. Returns
    True if the vocabulary grew (the caller must resize the model's embeddings).
    """
    if tokenizer.eos_token is None:
        raise KorlhfError("the tokenizer has no EOS token; set tokenizer.eos_token before training")
    grew = False
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        before = len(tokenizer)
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        grew = len(tokenizer) > before
    if template is not None:
        tokenizer.chat_template = get_template(template)
    elif tokenizer.chat_template is None:
        tokenizer.chat_template = KOCHATGPT
    return grew


def to_messages(prompt: str, response: str | None = None, system: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def render_prompt(tokenizer, prompt: str | list[dict], system: str | None = None) -> str:
    """The text a model sees before its answer: a user prompt, or a message history."""
    messages = to_messages(prompt, system=system) if isinstance(prompt, str) else prompt
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_example(tokenizer, prompt: str, response: str, system: str | None = None) -> str:
    """Prompt and answer as trained on, ending with the tokenizer's EOS."""
    return tokenizer.apply_chat_template(to_messages(prompt, response, system), tokenize=False)
