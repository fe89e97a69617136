"""small_dense (P3's SDT): the same architecture with every width shrunk so its kernel
weights match the ticket's remaining ones (prunable kept + unpruned kernels), trained
dense from a fresh initialization (one per draw) with the evaluation recipe."""

from __future__ import annotations

from jaxtickets.branches.base import Branch, BranchJob
from jaxtickets.sparsity import masks as masks_lib

SMALL_DENSE_STREAM = 6  # the small model's initialization


class SmallDense(Branch):
    name = "small_dense"
    random = can_train_from_scratch = True
    flops_exact = False  # its width follows the ticket's count, known after pruning
    description = "a dense network of the ticket's size, fresh weights"

    def check_config(self, config, used: bool) -> None:
        """A model by import path is narrowed only if it is one of the built-in classes
        whose widths are fields (sparsity/small_dense.py); others are refused here,
        not when the first level reaches the branch."""
        from jaxtickets.import_paths import is_import_path

        if not used or not is_import_path(config.model.name):
            return
        from jaxtickets.errors import ConfigError
        from jaxtickets.models import create_model
        from jaxtickets.sparsity.small_dense import width_fields

        try:
            width_fields(create_model(config.model.name, 10, config.model.dropout))
        except ValueError as err:
            raise ConfigError(f"branches: {self.name} narrows the model's layer widths, "
                              f"which model.name={config.model.name!r} does not expose "
                              f"({err})") from None

    def run(self, job: BranchJob) -> list[dict]:
        from jaxtickets.sparsity.small_dense import kernel_weight_count, small_dense_model

        ex, ctx = job.experiment, job.ctx
        ev = ex.evaluation
        full = kernel_weight_count(ev.model, ev.image_shape)
        target = round(masks_lib.kernel_density(ctx.mask, ctx.initial["params"]) * full)
        model, count = small_dense_model(ev.model, target, ev.image_shape)
        setup = ex.setup_with_model(("small_dense", target), model)  # one per size, not draw
        weights = ex.init_weights(setup, ex.key(job.replicate, SMALL_DENSE_STREAM, job.level,
                                                *job.draw_stream()))
        dense_mask = masks_lib.init_mask(weights["params"], ex.policy)
        summary, _ = ex.train(setup, job.run_dir, job.label,
                              (weights, ex.control_start(self.name)), dense_mask,
                              job.replicate, None)
        row = ex.row(job.source, setup, job.replicate, job.level, self.name, dense_mask,
                     weights, summary, draw=job.draw)
        row.update({"density": masks_lib.density(ctx.mask), "remaining_weights": count,
                    "kernel_density": count / full, "small_dense_target_weights": target})
        return [row]
