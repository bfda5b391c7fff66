"""The wire format (DESIGN §4) in both directions: the one place that spells its strings.

- :mod:`~deepeyes.wire.tokens`: Qwen2.5-VL's special tokens and the end-of-turn markers;
- :mod:`~deepeyes.wire.render`: actions, observation turns, stop strings;
- :mod:`~deepeyes.wire.parse`: one turn → exactly one action plus its format violations,
  under the written grammar policy (also in docs/wire.md);
- :mod:`~deepeyes.wire.response`: a whole decoded response → a trajectory (the text route).

Everything is re-exported here, so callers write ``from deepeyes import wire`` and
``wire.CODE_OPEN``, ``wire.parse_action(text)``.
"""

from deepeyes.wire.parse import (
    ACTION_TAGS,
    VIOLATION_KINDS,
    FormatViolation,
    ParsedTurn,
    check_turn,
    check_turns,
    format_score,
    parse_action,
    parse_turn,
    strip_thinking,
)
from deepeyes.wire.render import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CODE_CLOSE,
    CODE_OPEN,
    ERROR_BUDGET,
    ERROR_DISABLED,
    ERROR_INVALID,
    IMAGE_PLACEHOLDER,
    IMAGE_SEARCH_TOOL,
    NOTE_PREFIX,
    STOP_STRINGS,
    TEXT_SEARCH_TOOL,
    THINK_CLOSE,
    THINK_OPEN,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TOOL_RESPONSE_CLOSE,
    TOOL_RESPONSE_OPEN,
    TOOL_STOPS,
    answer_action,
    code_action,
    code_observation,
    error_response,
    escape_placeholders,
    image_search_action,
    image_search_body,
    note,
    restore_stop_string,
    text_search_action,
    text_search_body,
    text_search_entry,
    think,
    tool_call_action,
    tool_response,
)
from deepeyes.wire.response import (
    ResponseTurn,
    observation_status,
    render_response,
    split_response,
    trajectory_from_response,
)
from deepeyes.wire.tokens import (
    ASSISTANT_HEADER,
    END_OF_TEXT,
    END_OF_TURN,
    IM_END,
    IM_START,
    IMAGE_PAD,
    QWEN_SPECIAL_TOKENS,
    STRUCTURAL_TOKENS,
    VIDEO_PAD,
    VISION_END,
    VISION_PAD,
    VISION_START,
    remove_end_of_turn,
    trim_end_of_turn,
)

__all__ = [name for name in dir() if not name.startswith("_")]
