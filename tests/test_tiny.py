import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from korlhf.templates import prepare_tokenizer, render_example, render_prompt

KOREAN = "안녕하세요! 불고기용 고기는 한우인가요? 네, 1등급 한우입니다. 😀 漢字 OK"


def test_korean_round_trip(tiny_tokenizer):
    ids = tiny_tokenizer(KOREAN, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == KOREAN
    assert tiny_tokenizer.unk_token_id not in ids


def test_special_tokens_distinct(tiny_tokenizer):
    ids = {tiny_tokenizer.pad_token_id, tiny_tokenizer.eos_token_id, tiny_tokenizer.bos_token_id,
           tiny_tokenizer.unk_token_id}
    assert None not in ids and len(ids) == 4
    assert tiny_tokenizer.pad_token != tiny_tokenizer.eos_token


def test_prepare_tokenizer_adds_pad_when_pad_is_eos():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel()
    backend.train_from_iterator(["가나다라 마바사"] * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=["</s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="</s>")  # a KoGPT-2-like mistake
    size = len(tok)
    assert prepare_tokenizer(tok) is True  # the vocabulary grew: the caller must resize embeddings
    assert tok.pad_token == "<pad>" and tok.pad_token_id == size and tok.pad_token_id != tok.eos_token_id
    assert prepare_tokenizer(tok) is False  # idempotent


def test_reload_gives_same_logits(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    batch = tok([KOREAN, "짧은 문장"], return_tensors="pt", padding=True)
    for name, cls in [("gpt2", AutoModelForCausalLM), ("llama", AutoModelForCausalLM),
                      ("reward", AutoModelForSequenceClassification)]:
        model = cls.from_pretrained(tiny_models[name]).eval()
        again = cls.from_pretrained(tiny_models[name]).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(**batch).logits, again(**batch).logits, rtol=0, atol=1e-6)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_models["reward"])
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id


def test_reloaded_tokenizer_keeps_template_and_pad(tiny_models, tiny_tokenizer):
    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    assert tok.chat_template == tiny_tokenizer.chat_template
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>"


def test_templates_render_exactly(tiny_tokenizer):
    tok = tiny_tokenizer
    prepare_tokenizer(tok, "kochatgpt")
    assert render_prompt(tok, "질문") == "### Instruction(명령어):\n질문\n\n### Response(응답):"
    assert render_example(tok, "질문", "답") == "### Instruction(명령어):\n질문\n\n### Response(응답): 답</s>"
    prepare_tokenizer(tok, "koalpaca")
    assert render_prompt(tok, "질문") == "### 질문: 질문\n\n### 답변:"
    assert render_example(tok, "질문", "답") == "### 질문: 질문\n\n### 답변: 답</s>"
    prepare_tokenizer(tok, "chatml")
    assert render_prompt(tok, "질문", system="친절하게") == (
        "<|im_start|>system\n친절하게<|im_end|>\n<|im_start|>user\n질문<|im_end|>\n<|im_start|>assistant\n"
    )
    prepare_tokenizer(tok, "kochatgpt")


def test_generation_markers_mask_only_the_answer(tiny_tokenizer):
    tok = tiny_tokenizer
    for name in ("kochatgpt", "koalpaca", "chatml"):
        prepare_tokenizer(tok, name)
        messages = [{"role": "user", "content": "서울은 어디?"}, {"role": "assistant", "content": "한국의 수도"},
                    {"role": "user", "content": "부산은?"}, {"role": "assistant", "content": "항구 도시"}]
        out = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        answer_ids = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
        text = tok.decode(answer_ids)
        assert "한국의 수도" in text and "항구 도시" in text and "서울" not in text and "부산" not in text, name
        assert answer_ids.count(tok.eos_token_id) == 2, name
        if name != "chatml":
            assert tok.apply_chat_template(messages, tokenize=False).count("\n\n###") == 3, name
    prepare_tokenizer(tok, "kochatgpt")
