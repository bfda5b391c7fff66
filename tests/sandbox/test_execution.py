"""Stateful execution through HTTP: state, output, figures, limits, timeouts and kernel loss."""

from __future__ import annotations

import io
import os
import signal
import time

from PIL import Image

from deepeyes.sandbox.client import SandboxClient

#: The kernel's pid as the host sees it (in its own PID namespace ``os.getpid()`` is 1).
KERNEL_PID = "__deepeyes__.status().payload['pid']"


def test_state_persists_across_calls(client: SandboxClient, session_id: str) -> None:
    assert client.execute(session_id, "x = 40").status == "success"
    result = client.execute(session_id, "x += 2\nprint('x is', x)\nx")
    assert result.status == "success"
    assert result.stdout == "x is 42\n"
    assert result.result == "42"
    assert result.execution_time > 0


def test_errors_come_back_in_stderr_without_colour_codes(client: SandboxClient, session_id: str) -> None:
    result = client.execute(session_id, "y = 1\n1 / 0")
    assert result.status == "error"
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "\x1b[" not in result.stderr
    assert client.execute(session_id, "y").result == "1"  # the session is still usable


def test_figures_come_back_as_png(client: SandboxClient, session_id: str) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "fig = plt.figure(figsize=(5.12, 5.12), dpi=100)\nplt.plot([0, 1], [1, 0])\nplt.show()\n"
        "from PIL import Image\ndisplay(Image.new('RGB', (20, 10), 'blue'))"
    )
    result = client.execute(session_id, code)
    assert result.status == "success", result.stderr
    assert len(result.images) == 2
    figure, displayed = (Image.open(io.BytesIO(image)) for image in result.images)
    assert figure.format == "PNG" and figure.size[0] > 300
    assert displayed.format == "PNG" and displayed.size == (20, 10)


def test_image_count_is_capped_with_a_note(client: SandboxClient, session_id: str) -> None:
    code = "from PIL import Image\nfor i in range(12):\n    display(Image.new('L', (4, 4), i))"
    result = client.execute(session_id, code)
    assert len(result.images) == 10
    assert any("2 more images dropped" in note for note in result.notes)


def test_oversized_output_is_truncated_with_a_marker(client: SandboxClient, session_id: str) -> None:
    result = client.execute(session_id, "print('a' * 5000)")  # the test config caps output at 2000 chars
    assert result.status == "success"
    assert result.stdout.startswith("a" * 2000)
    assert "[output truncated: 3001 more characters]" in result.stdout  # 5000 a's and a newline


def test_timeout_interrupts_and_the_session_keeps_its_state(client: SandboxClient, session_id: str) -> None:
    client.execute(session_id, "kept = 'yes'")
    started = time.monotonic()
    result = client.execute(session_id, "import time\nwhile True:\n    time.sleep(0.01)", timeout=1)
    assert result.status == "timeout"
    assert "exceeded the 1 s limit" in result.stderr
    assert time.monotonic() - started < 10
    assert client.execute(session_id, "kept").result == "'yes'"


def test_kernel_exit_during_a_call_restarts_and_restores(client: SandboxClient, session_id: str) -> None:
    client.execute(session_id, "total = 7\ndef double(v):\n    return 2 * v")
    result = client.execute(session_id, "import os\nos._exit(3)")
    assert result.status == "error"
    assert "kernel died" in result.stderr.lower()
    assert "kernel restarted" in result.notes
    assert client.execute(session_id, "double(total)").result == "14"


def test_kernel_killed_between_calls_is_replaced_from_the_snapshot(client: SandboxClient, session_id: str) -> None:
    pid = int(client.execute(session_id, "label = 'before'\n" + KERNEL_PID).result)
    os.kill(pid, signal.SIGKILL)
    result = client.execute(session_id, "label")
    assert result.status == "success"
    assert result.result == "'before'"
    assert any("restored" in note for note in result.notes)
    assert int(client.execute(session_id, KERNEL_PID).result) != pid


def test_unpicklable_names_are_reported_not_dropped(client: SandboxClient, session_id: str) -> None:
    saved = client.execute(session_id, "gen = (i for i in range(3))\nn = 5")
    assert any("gen (generator" in note for note in saved.notes)
    pid = int(client.execute(session_id, KERNEL_PID).result)
    os.kill(pid, signal.SIGKILL)
    restored = client.execute(session_id, "n")
    assert restored.result == "5"
    assert any("not restored" in note and "gen (generator" in note for note in restored.notes)
    assert client.execute(session_id, "gen").status == "error"


def test_session_images_are_preloaded(client: SandboxClient, session_id: str) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (30, 20), "green").save(jpeg, format="JPEG")
    opened = client.open_session(session_id, [Image.new("RGB", (64, 48), "red"), jpeg.getvalue()])
    assert opened["images"] == 2
    result = client.execute(session_id, "(image_1.size, image_1.getpixel((0, 0)), image_2.size, image_2.format)")
    assert result.result == "((64, 48), (255, 0, 0), (30, 20), 'JPEG')"


def test_close_forgets_the_session(client: SandboxClient, session_id: str) -> None:
    client.execute(session_id, "secret = 1")
    client.close_session(session_id)
    assert client.execute(session_id, "secret").status == "error"


def test_kernel_that_ignores_the_interrupt_is_replaced(client: SandboxClient, session_id: str) -> None:
    client.execute(session_id, "survivor = [1, 2, 3]")
    stubborn = "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass"
    result = client.execute(session_id, stubborn, timeout=1)
    assert result.status == "timeout"
    assert "did not respond to the interrupt" in result.stderr
    assert "kernel restarted" in result.notes
    assert client.execute(session_id, "sum(survivor)").result == "6"
