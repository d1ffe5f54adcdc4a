"""trl's `SFTTrainer` and `DPOTrainer` fine-tune the decoder and BDH on CPU, unpatched: two steps each on a tiny dataset.

trl (1.16) scores tokens through the model's backbone (`model.base_model`, found by `base_model_prefix`) and reads its
`last_hidden_state`, then applies the LM head itself; a decoder whose only forward returns `CausalLMOutputWithPast`
fails with `AttributeError: 'CausalLMOutputWithPast' object has no attribute 'last_hidden_state'` (issue 16, item 4).
BDH's dropout (on its Hebbian gate) is functional, read from `config.dropout`; trl's `disable_dropout` only reaches
`nn.Dropout` modules, so a BDH for trl's DPO is built with `dropout=0` (hierlm's own DPO, `hierlm.align`, zeroes both).
No hub, no shared data: the model is built here, the tokenizer is the byte tokenizer, every output goes to tmp_path."""
import copy, math
import pytest, torch
from datasets import Dataset
from hierlm.decoder import DecoderConfig, build_decoder
from hierlm.bdh import BDHConfig, build_bdh
from hierlm.tokenizers import byte_tokenizer


EOS = '<|endoftext|>'
STEPS = 2

TEXTS = ['The cat sat on the mat.', 'A dog ran in the park.', 'Birds sing at dawn.', 'Rain falls on the roof.',
         'The sun is warm today.', 'Fish swim in the sea.', 'Leaves turn red in fall.', 'Snow covers the hill.']
PAIRS = [('Q: 2+2? A:', ' 4', ' 5'), ('Q: sky colour? A:', ' blue', ' green'), ('Q: cats say? A:', ' meow', ' moo'),
         ('Q: ice is? A:', ' cold', ' hot'), ('Q: 3+3? A:', ' 6', ' 7'), ('Q: grass is? A:', ' green', ' purple'),
         ('Q: fire is? A:', ' hot', ' wet'), ('Q: 1+1? A:', ' 2', ' 3')]

def tiny(arch='decoder'):
    "A 2-layer, d_model 32 decoder (or BDH) and a byte tokenizer with an end-of-text token (trl pads with it)."
    torch.manual_seed(0)
    tok = byte_tokenizer([EOS])
    tok.eos_token = tok.pad_token = EOS
    if arch == 'bdh':
        cfg = BDHConfig(d_model=32, n_layers=2, n_heads=2, mlp_multiplier=8, block_size=64, dropout=0.0)
        return build_bdh(cfg, vocab_size=len(tok)), tok
    return build_decoder(DecoderConfig(d_model=32, n_layers=2, n_heads=2, block_size=64), vocab_size=len(tok)), tok

def common(tmp_path) -> dict:
    "Trainer arguments both tests share: CPU, fp32, two logged steps, nothing saved or reported."
    return dict(output_dir=str(tmp_path/'out'), max_steps=STEPS, per_device_train_batch_size=4, learning_rate=1e-3,
                logging_steps=1, save_strategy='no', report_to='none', use_cpu=True, bf16=False, fp16=False,
                max_length=64, seed=0, dataloader_num_workers=0, disable_tqdm=True)

def snapshot(model) -> dict: return {n: p.detach().clone() for n, p in model.named_parameters()}

def unchanged(before:dict, model) -> list:
    return [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())]

def train_logs(trainer) -> list:
    "The per-step log records (those with a `loss`), not the end-of-training summary."
    return [r for r in trainer.state.log_history if 'loss' in r and 'train_loss' not in r]

@pytest.mark.parametrize('arch', ['decoder', 'bdh'])
def test_sft_trainer_runs(tmp_path, arch):
    from trl import SFTConfig, SFTTrainer
    model, tok = tiny(arch)
    before = snapshot(model)
    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_dict({'text': TEXTS}),
                         args=SFTConfig(**common(tmp_path)))
    trainer.train()
    assert trainer.state.global_step == STEPS
    logs = train_logs(trainer)
    assert len(logs) == STEPS and all(math.isfinite(r['loss']) for r in logs), logs
    assert 0 < logs[0]['loss'] < 2 * math.log(len(tok)), logs          # ~ln(257) at init: a real token loss, not 0 or a blow-up
    assert not unchanged(before, model), f'parameters not trained: {unchanged(before, model)}'

@pytest.mark.parametrize('arch', ['decoder', 'bdh'])
def test_dpo_trainer_runs(tmp_path, arch):
    from trl import DPOConfig, DPOTrainer
    model, tok = tiny(arch)
    ref = copy.deepcopy(model)                  # trl 1.16 cannot rebuild a reference from an in-memory model (ref_model=None)
    before, ref_before = snapshot(model), snapshot(ref)
    data = Dataset.from_dict({k: list(v) for k, v in zip(('prompt', 'chosen', 'rejected'), zip(*PAIRS))})
    trainer = DPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=data,
                         args=DPOConfig(**common(tmp_path), beta=0.1))
    trainer.train()
    assert trainer.state.global_step == STEPS
    logs = train_logs(trainer)
    assert len(logs) == STEPS, logs
    for r in logs:
        for k in ('loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies'):
            assert k in r and math.isfinite(r[k]), (k, r)
    assert logs[0]['loss'] == pytest.approx(math.log(2), abs=1e-4)    # policy == reference at step 1: -log σ(0)
    assert logs[-1]['rewards/chosen'] != 0 or logs[-1]['rewards/rejected'] != 0, logs   # step 2: the policy has moved
    assert not unchanged(before, model), f'parameters not trained: {unchanged(before, model)}'
    assert not [n for n, p in ref.named_parameters() if not torch.equal(ref_before[n], p.detach())], 'reference changed'
