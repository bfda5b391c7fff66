"""Reward server entry point kept where the original DeepEyes put it.

    python reinforcement_learning/evaluation_server/server.py --port 5000

The server lives in the package (``deepeyes.rewards.server``, ``python -m deepeyes.rewards.server``);
this file only forwards its arguments there.
"""

from deepeyes.rewards.server import main

if __name__ == "__main__":
    main(prog="python reinforcement_learning/evaluation_server/server.py")
