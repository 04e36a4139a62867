"""Plain text from terminal output (error texts, served logs)."""

from shared.plain_text import strip_ansi


def test_colours_and_progress_redraws_are_removed() -> None:
    text = "\x1b[34m\x1b[1mtrain: \x1b[0mScanning\r  1/8 12%\r  8/8 100%\nValueError: \x1b[31mbad\x1b[0m\n"
    cleaned = strip_ansi(text)
    assert "\x1b" not in cleaned and "\r" not in cleaned
    assert cleaned.splitlines() == ["  8/8 100%", "ValueError: bad"]
    assert strip_ansi("\x1b[K      5/20  loss 1.2\x1b[K") == "      5/20  loss 1.2"
