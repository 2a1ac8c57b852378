"""Registers the core's adapter methods: full, lora, pissa, adalora, psv and subspace."""

from subspace_hub.hookspecs import hookimpl
from subspace_hub.specs import AdapterSpec


@hookimpl
def register_adapters(register):
    from subspace_hub.adapters import full, peft_methods, subspace

    peft_io = {"save": peft_methods.save_peft, "load": peft_methods.load_peft, "merge": peft_methods.merge_peft}
    register(
        AdapterSpec(
            "full",
            full.attach_full,
            description="full fine-tuning (all but the backbone's frozen parts)",
            save=full.save_full,
            load=full.load_full,
            merge=full.merge_full,
        )
    )
    small = {"example_options": lambda model: {"rank": 2}}
    register(AdapterSpec("lora", peft_methods.attach_lora, description="LoRA through PEFT", **peft_io, **small))
    register(
        AdapterSpec(
            "pissa",
            peft_methods.attach_pissa,
            description="PiSSA (principal singular vector init) through PEFT",
            **peft_io,
            **small,
        )
    )
    register(
        AdapterSpec(
            "adalora",
            peft_methods.attach_adalora,
            description="AdaLoRA (adaptive rank budget) through PEFT",
            regularizer=peft_methods.adalora_regularizer,
            after_step=peft_methods.adalora_after_step,
            training_state=peft_methods.adalora_training_state,
            load_training_state=peft_methods.adalora_load_training_state,
            example_options=lambda model: {"total_step": 10, "rank": 2, "init_rank": 4},
            **peft_io,
        )
    )
    register(
        AdapterSpec(
            "psv",
            peft_methods.attach_psv,
            description="principal singular vectors with a trainable core (PEFT PSOFT as LoRA-XS)",
            **peft_io,
            **small,
        )
    )
    register(
        AdapterSpec(
            "subspace",
            subspace.attach_subspace,
            description="attribute subspaces: frozen bases, trainable core",
            save=subspace.save_subspace,
            load=subspace.load_subspace,
            merge=subspace.merge_subspace,
            example_options=lambda model: {"bundle": subspace.synthetic_bundle(model)},
        )
    )
