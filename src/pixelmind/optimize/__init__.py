"""Model optimization for deployment: INT8 quantization, structured pruning and distillation.

The capability is task-free; each task contributes hooks (``prune_ignored_layers``,
``calibration_inputs``, ``distillation_step``, ``optimize_max_drop``) and may refuse with a reason
(``optimize_unsupported``). The entry point is :func:`pixelmind.optimize.pipeline.optimize`
(``Model.optimize`` and ``pixelmind optimize`` call it).
"""
