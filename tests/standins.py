"""Local stand-ins for what LeRobot would fetch from the Hub: tiny random models of the real classes,
laid out in a temporary HF hub cache so a real lerobot-train finds them with HF_HUB_OFFLINE=1.

Runs in the main env (torch, transformers, lerobot 0.6): tests call it as a process,
`python tests/standins.py smolvla HUB_CACHE`, so the test process never imports torch.
What it writes, for smolvla:
  - HuggingFaceTB/SmolVLM2-500M-Video-Instruct: a SmolVLMConfig with a 4-layer, 64-wide Llama text
    model and a 1-layer, 32-wide vision encoder (patch 16, image 64, pixel shuffle 2: 4 tokens per
    camera), its random weights (save_pretrained) and a SmolVLMProcessor beside it: a byte-level BPE
    tokenizer with the SmolVLM special tokens (<fake_token_around_image>, <global-img>, <image>, ...),
    the image and video processors and a chat template.
  - lerobot/smolvla_base: a SmolVLAPolicy of that VLM with the real base's config values (camera1..camera3,
    6-D state and action, 512x512 images, load_vlm_weights), saved with save_pretrained, with its
    pre/post-processor pipelines (policy_preprocessor.json, policy_postprocessor.json).
By hand (e.g. a GPU check without the real models): give it a fresh folder and point HF_HUB_CACHE at it;
never the real cache (it rewrites refs/main of those two repos).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

SMOLVLM_ID = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
SMOLVLA_BASE_ID = "lerobot/smolvla_base"
# The SmolVLM tokenizer's special tokens (named attributes the SmolVLM processor and SmolVLA read).
NAMED_TOKENS = {"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"}
IMAGE_SIZE = 64      # the stand-in vision encoder's image side (SmolVLM2: 512)
PATCH_SIZE = 16
BASE_CAMERAS = ("camera1", "camera2", "camera3")  # config/cameras.yaml's smolvla entry maps to these
BASE_DIM = 6


def cache_folder(hub_cache: Path, repo_id: str) -> Path:
    """`models--ORG--NAME/snapshots/<rev>/` under the hub cache, with refs/main naming the revision
    (huggingface_hub's layout; offline, `from_pretrained(repo_id)` resolves refs/main to it)."""
    repo = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def tiny_tokenizer():
    """A byte-level BPE tokenizer (every byte a token, no merges) with SmolVLM's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    rows_cols = [f"<row_{r}_col_{c}>" for r in range(1, 3) for c in range(1, 3)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *NAMED_TOKENS.values(), *rows_cols]
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>", model_max_length=8192,
                                   **NAMED_TOKENS)


def build_smolvlm(folder: Path) -> None:
    """The SmolVLM2 stand-in: config, random weights and processor (tokenizer, image and video
    processors, chat template) saved into `folder`."""
    import torch
    from transformers import (
        LlamaConfig,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
        SmolVLMVisionConfig,
    )

    tokenizer = tiny_tokenizer()
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
                       rms_norm_eps=1e-5, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    vision = SmolVLMVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    config = SmolVLMConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), scale_factor=2,
                           image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    SmolVLMForConditionalGeneration(config).save_pretrained(folder)
    image_processor = SmolVLMImageProcessor(size={"longest_edge": IMAGE_SIZE}, do_image_splitting=False,
                                            max_image_size={"longest_edge": IMAGE_SIZE})
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": IMAGE_SIZE},
                                            max_image_size={"longest_edge": IMAGE_SIZE})
    chat_template = ("{% for message in messages %}<|im_start|>{{ message['role'] }}: "
                     "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
                     "{% else %}<image>{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}")
    seq_len = (IMAGE_SIZE // PATCH_SIZE) ** 2 // config.scale_factor ** 2
    SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                     image_seq_len=seq_len, chat_template=chat_template).save_pretrained(folder)


def build_smolvla_base(folder: Path, vlm_model_name: str = SMOLVLM_ID) -> None:
    """The lerobot/smolvla_base stand-in: a SmolVLAPolicy of the stand-in VLM (its weights loaded, as the
    real base's config says), saved with its pre/post-processors into `folder`."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    inputs = {f"observation.images.{cam}": PolicyFeature(FeatureType.VISUAL, (3, 256, 256)) for cam in BASE_CAMERAS}
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (BASE_DIM,))
    # The real base's config values (its images are resized to 512x512: a run shrinks that by flag).
    config = SmolVLAConfig(vlm_model_name=vlm_model_name, load_vlm_weights=True, device="cpu", push_to_hub=False,
                           input_features=inputs,
                           output_features={"action": PolicyFeature(FeatureType.ACTION, (BASE_DIM,))},
                           resize_imgs_with_padding=(512, 512), pad_language_to="max_length", prefix_length=0,
                           num_expert_layers=0, tokenizer_max_length=48)
    torch.manual_seed(1)
    policy = SmolVLAPolicy(config)
    policy.save_pretrained(folder)
    stats = {key: {"mean": torch.zeros(BASE_DIM), "std": torch.ones(BASE_DIM)}
             for key in ("observation.state", "action")}
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=stats)
    pre.save_pretrained(folder)
    post.save_pretrained(folder)


def build_smolvla(hub_cache: Path, base: bool = True) -> dict:
    """Both smolvla stand-ins in `hub_cache` (the base policy only when `base`); returns their folders."""
    folders = {SMOLVLM_ID: cache_folder(hub_cache, SMOLVLM_ID)}
    build_smolvlm(folders[SMOLVLM_ID])
    if base:
        folders[SMOLVLA_BASE_ID] = cache_folder(hub_cache, SMOLVLA_BASE_ID)
        build_smolvla_base(folders[SMOLVLA_BASE_ID])
    return {repo: str(path) for repo, path in folders.items()}


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "smolvla":
        sys.exit("usage: python tests/standins.py smolvla HUB_CACHE [--no-base]")
    # The base policy is built from the VLM stand-in by its repo id: resolved offline in this cache.
    os.environ.update({"HF_HUB_CACHE": str(Path(sys.argv[2]).resolve()), "HF_HUB_OFFLINE": "1"})
    print(json.dumps(build_smolvla(Path(sys.argv[2]), base="--no-base" not in sys.argv[3:])))
