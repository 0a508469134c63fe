"""The real bundled model: behaviour that depends on the model is tested on the model."""

import pytest

from workbench import llm
from workbench.errors import ModelTimeout, ModelUnavailable
from workbench.llm import local
from workbench.tracing import spans

pytestmark = pytest.mark.model

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def engine():
    return local.get_model()


def test_answers_with_real_token_counts_and_a_trace(project, engine):
    reply = llm.complete(QUESTION, max_tokens=32)
    assert "Paris" in reply.text
    prompt = local.chat_prompt([{"role": "user", "content": QUESTION}])
    assert reply.usage.prompt_tokens == engine.count_tokens(prompt)
    assert reply.usage.completion_tokens == engine.count_tokens(reply.text) + 1  # + end token
    assert (reply.cost_usd, reply.finish_reason, reply.model) == (0.0, "stop", llm.BUNDLED_MODEL)
    [span] = spans(project, name="llm.call")
    assert span.attributes["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens


def test_uses_the_chat_template_with_the_system_prompt(engine):
    system = "You are a terse assistant for a help desk."
    reply = llm.complete("Say hello.", system=system, max_tokens=8, cache=False)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Say hello."}]
    templated = local.chat_prompt(messages)
    assert system in templated and templated.rstrip().endswith("assistant")
    assert reply.usage.prompt_tokens == engine.count_tokens(templated)


def test_max_tokens_and_stop_sequences(engine):
    short = llm.complete("Write a long story about a dragon.", max_tokens=5, cache=False)
    assert (short.usage.completion_tokens, short.finish_reason) == (5, "length")
    counted = llm.complete("Count from 1 to 10, separated by commas.", max_tokens=40,
                           stop=["5"], cache=False)
    assert "5" not in counted.text and "4" in counted.text


def test_streaming_gives_the_same_reply(engine):
    whole = llm.complete("Name three colours.", max_tokens=24, cache=False)
    reply = llm.stream("Name three colours.", max_tokens=24, cache=False)
    pieces = list(reply)
    assert len(pieces) > 3
    assert "".join(pieces).strip() == whole.text.strip()
    assert reply.completion.usage.completion_tokens == whole.usage.completion_tokens


def test_concurrent_requests_are_batched(engine):
    before = dict(engine.stats)
    prompts = [QUESTION] + [f"Give one word that rhymes with '{w}'." for w in
                            ("cat", "tree", "light", "bed", "ring", "car", "sun")]
    replies = llm.complete_many(prompts, max_tokens=16, progress=False, cache=False)
    assert "Paris" in replies[0].text
    assert all(r.usage.completion_tokens > 0 for r in replies)
    assert engine.stats["requests"] - before["requests"] == len(prompts)
    assert engine.stats["batches"] - before["batches"] < len(prompts)
    assert engine.stats["largest_batch"] >= 4


async def _ask_async():
    return await llm.acomplete(QUESTION, max_tokens=16, cache=False)


def test_async_call(engine, run_async):
    assert "Paris" in run_async(_ask_async()).text


def test_a_timeout_is_an_error_not_a_cut_reply_and_is_not_retried(project, engine):
    before = engine.stats["requests"]
    with pytest.raises(ModelTimeout, match="did not answer within 0.3s"):
        llm.complete("Write a long story about a dragon.", max_tokens=200, timeout=0.3,
                     retries=3, cache=False)
    # a retry would only queue more work on the CPU that just ran out of time
    assert engine.stats["requests"] - before == 1
    [span] = spans(project, name="llm.call")
    assert span.attributes["workbench.attempts"] == 1


def test_each_request_in_a_batch_stops_on_its_own(engine):
    """A deadline, a stop sequence or max_tokens ends one request; the others in its batch go
    on to their own end."""
    import time

    slow = local.GenerationRequest([{"role": "user", "content": "Write a long story about a "
                                                                "dragon."}],
                                   max_new_tokens=200, deadline=time.monotonic() + 0.4)
    short = local.GenerationRequest([{"role": "user", "content": "Write a poem about rain."}],
                                    max_new_tokens=3)
    whole = local.GenerationRequest([{"role": "user", "content": QUESTION}], max_new_tokens=40)
    futures = [engine.submit(r) for r in (slow, short, whole)]
    with pytest.raises(local.GenerationTimeout):
        futures[0].result()
    assert (futures[1].result().completion_tokens, futures[1].result().finish_reason) == \
        (3, "length")
    assert "Paris" in futures[2].result().text
    assert futures[2].result().finish_reason == "stop"


def test_a_stream_stops_at_a_stop_sequence_without_showing_it(engine):
    reply = llm.stream("Count from 1 to 10, separated by commas.", max_tokens=40, stop=["5"],
                       cache=False)
    shown = "".join(reply)
    assert "5" not in shown and "4" in shown
    assert reply.completion.text == shown.strip()


def test_the_engine_and_transformers_read_the_same_prompt():
    """Inference renders the chat template and tokenizes without transformers; fine-tuning uses
    transformers' tokenizer. Both must see the same text and the same token ids."""
    hf = local.load_tokenizer()
    light = local.tokenizer()
    conversations = [
        [{"role": "user", "content": QUESTION}],
        [{"role": "system", "content": "Be terse."},
         {"role": "user", "content": "Héllo  wörld\n\n  tabs\tand émojis 🤖"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
         {"role": "user", "content": "c"}],
    ]
    for messages in conversations:
        text = local.chat_prompt(messages)
        assert text == hf.apply_chat_template(messages, add_generation_prompt=True,
                                              tokenize=False)
        ids = local.encode_prompt(light, messages)
        assert ids == local.encode_prompt(hf, messages)
        assert light.decode(ids) == hf.decode(ids, skip_special_tokens=True)
    assert light.eos_token_id == hf.eos_token_id


def test_the_reference_engine_gives_the_same_greedy_answer(engine):
    reference = local.LocalModel(engine="transformers")
    assert (engine.engine_name, reference.engine_name) == ("ctranslate2", "transformers")
    ask = [{"role": "user", "content": QUESTION}]
    fast = engine.generate(local.GenerationRequest(ask, max_new_tokens=24))
    slow = reference.generate(local.GenerationRequest(ask, max_new_tokens=24))
    assert "Paris" in fast.text and "Paris" in slow.text
    assert fast.prompt_tokens == slow.prompt_tokens


def test_lora_adapters_attach_by_name(project, engine, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(local.cache_dir(), dtype=torch.float32)
    torch.manual_seed(0)
    adapted = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"],
                                              init_lora_weights=False, lora_alpha=64))
    adapted.save_pretrained(project.adapters_dir / "scrambled")

    plain = llm.complete(QUESTION, max_tokens=16, cache=False)
    tuned = llm.complete(QUESTION, max_tokens=16, cache=False, adapter="scrambled")
    by_id = llm.complete(QUESTION, model=f"{llm.BUNDLED_MODEL}:scrambled", max_tokens=16,
                         cache=False)
    plain_again = llm.complete(QUESTION, max_tokens=16, cache=False)
    assert tuned.text != plain.text
    assert by_id.text == tuned.text
    assert plain_again.text == plain.text  # the adapter is off again for plain calls

    # Retrained under the same name: the new weights are loaded, not the old ones.
    torch.manual_seed(1)
    again = get_peft_model(AutoModelForCausalLM.from_pretrained(local.cache_dir(),
                                                                dtype=torch.float32),
                           LoraConfig(r=8, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False, lora_alpha=64))
    again.save_pretrained(project.adapters_dir / "scrambled")
    retrained = llm.complete(QUESTION, max_tokens=16, cache=False, adapter="scrambled")
    assert retrained.text != tuned.text
    assert engine._reference is not None  # adapters run on transformers with PEFT
    with pytest.raises(ModelUnavailable, match="no LoRA adapter named 'missing'"):
        llm.complete(QUESTION, adapter="missing")


def test_embeddings_put_similar_sentences_close():
    vectors = llm.embed(["How do I reset my password?", "I forgot my password and can't log in",
                         "Where is my parcel?"])
    assert vectors.shape == (3, 384)
    same, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert same > 0.6 and different < 0.4


def test_a_reply_of_known_form_is_capped_for_the_bundled_model_only(project, engine):
    from workbench.prompts import PromptVersion
    from workbench.prompts.run import complete_item, reply_budget

    labels = ["billing", "shipping_delivery"]
    prompt = PromptVersion(template="Classify: {{ input }}. Reply with one of "
                                    "{{ labels | join(', ') }}.", labels=labels,
                           params={"max_tokens": 64})
    budget = reply_budget(prompt, llm.BUNDLED_MODEL)
    assert budget == max(engine.count_tokens(label) for label in labels) + 8
    assert reply_budget(prompt, "openai/gpt-4o-mini") is None  # hosted models stop on their own
    reasoning = prompt.model_copy(update={"technique": "chain_of_thought"})
    assert reply_budget(reasoning, llm.BUNDLED_MODEL) is None

    result = complete_item(project, prompt, {"input": "I was charged twice, please write a "
                                                      "long answer."}, repair_retries=0)
    assert result.completion.usage.completion_tokens <= budget
    longer = complete_item(project, prompt, {"input": "Write a long poem about invoices."},
                           repair_retries=0, max_tokens=40, cache=False)
    assert longer.completion.usage.completion_tokens > budget  # the caller's max_tokens wins

    bounded = {"type": "object", "properties": {
        "intent": {"enum": labels}, "urgent": {"type": "boolean"}}}
    structured = PromptVersion(template="{{ input }}", output_schema=bounded)
    assert 10 < reply_budget(structured, llm.BUNDLED_MODEL) < 60
    free_text = {"type": "object", "properties": {"summary": {"type": "string"}}}
    assert reply_budget(structured.model_copy(update={"output_schema": free_text}),
                        llm.BUNDLED_MODEL) is None


def test_embeddings_of_repeated_and_reordered_texts_are_the_same(engine):
    import numpy as np

    texts = ["Where is my parcel?", "I was charged twice for one order, please refund it.",
             "Where is my parcel?", "ok", "The app crashes when I upload a photo."]
    together = llm.embed(texts, dtype="float32")
    alone = np.stack([llm.embed(t, dtype="float32") for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    low = llm.embed(texts, dtype="bfloat16")
    assert (np.sum(low * together, axis=1) > 0.995).all()  # bfloat16 keeps the direction
