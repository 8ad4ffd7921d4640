"""Robustness: the task metric under adversarial attacks and common corruptions, and adversarial training.

``pixelmind robust`` / :func:`pixelmind.robust.evaluate.robustness_report`; ``train --set adv_train=pgd``
(:func:`pixelmind.robust.attacks.adversarial_batch`).
"""
