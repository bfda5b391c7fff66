"""RL training: the local engine (one machine, verl's algorithms) and the verl-engine plug-ins.

Entry point: ``reinforcement_learning/train.py``; design notes: ``docs/rl.md``.
"""
