"""The syntax errors Go's encoding/json reports (its scanner.go state machine, ported
state for state), so a body upstream would refuse reads the same here."""

from __future__ import annotations

MAX_NESTING_DEPTH = 10000  # encoding/json's maxNestingDepth

_OBJECT_KEY, _OBJECT_VALUE, _ARRAY_VALUE = range(3)
_SPACE = b" \t\r\n"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_SIMPLE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


class SyntaxError_(ValueError):
    pass


def quote_char(c: int) -> str:
    """encoding/json's quoteChar: the byte as a rune in single quotes, escaped as
    strconv.Quote escapes it."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        return "'\\\\'"
    if c in _SIMPLE_ESCAPES:
        return f"'{_SIMPLE_ESCAPES[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    # string(byte) is the rune U+00XX; Latin-1's non-printables are \u-escaped.
    if 0x80 <= c <= 0xA0 or c == 0xAD:
        return f"'\\u{c:04x}'"
    return f"'{chr(c)}'"


class _Scanner:
    def __init__(self) -> None:
        self.step = self.begin_value
        self.stack: list[int] = []
        self.end_top = False

    def error(self, c: int, context: str):
        raise SyntaxError_(f"invalid character {quote_char(c)} {context}")

    def push(self, state: int) -> None:
        self.stack.append(state)
        if len(self.stack) > MAX_NESTING_DEPTH:
            raise SyntaxError_("exceeded max depth")

    def pop(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.step, self.end_top = self.end_top_state, True
        else:
            self.step = self.end_value

    def begin_value_or_empty(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x5D:  # ]
            return self.end_value(c)
        return self.begin_value(c)

    def begin_value(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x7B:  # {
            self.step = self.begin_string_or_empty
            return self.push(_OBJECT_KEY)
        if c == 0x5B:  # [
            self.step = self.begin_value_or_empty
            return self.push(_ARRAY_VALUE)
        nxt = {0x22: self.in_string, 0x2D: self.neg, 0x30: self.zero, 0x74: self.lit("rue", "true"),
               0x66: self.lit("alse", "false"), 0x6E: self.lit("ull", "null")}.get(c)
        if nxt is None and c in b"123456789":
            nxt = self.one
        if nxt is None:
            self.error(c, "looking for beginning of value")
        self.step = nxt

    def begin_string_or_empty(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x7D:  # }
            self.stack[-1] = _OBJECT_VALUE
            return self.end_value(c)
        return self.begin_string(c)

    def begin_string(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x22:
            self.step = self.in_string
            return
        self.error(c, "looking for beginning of object key string")

    def end_value(self, c: int) -> None:
        if not self.stack:
            self.step, self.end_top = self.end_top_state, True
            return self.end_top_state(c)
        if c in _SPACE:
            self.step = self.end_value
            return
        ps = self.stack[-1]
        if ps == _OBJECT_KEY:
            if c == 0x3A:  # :
                self.stack[-1] = _OBJECT_VALUE
                self.step = self.begin_value
                return
            self.error(c, "after object key")
        if ps == _OBJECT_VALUE:
            if c == 0x2C:
                self.stack[-1] = _OBJECT_KEY
                self.step = self.begin_string
                return
            if c == 0x7D:
                return self.pop()
            self.error(c, "after object key:value pair")
        if c == 0x2C:
            self.step = self.begin_value
            return
        if c == 0x5D:
            return self.pop()
        self.error(c, "after array element")

    def end_top_state(self, c: int) -> None:
        if c not in _SPACE:
            self.error(c, "after top-level value")

    def in_string(self, c: int) -> None:
        if c == 0x22:
            self.step = self.end_value
        elif c == 0x5C:
            self.step = self.in_string_esc
        elif c < 0x20:
            self.error(c, "in string literal")

    def in_string_esc(self, c: int) -> None:
        if c in b'bfnrt\\/"':
            self.step = self.in_string
        elif c == 0x75:  # u
            self.step = self.esc_u(4)
        else:
            self.error(c, "in string escape code")

    def esc_u(self, left: int):
        def step(c: int) -> None:
            if c not in _HEX:
                self.error(c, "in \\u hexadecimal character escape")
            self.step = self.esc_u(left - 1) if left > 1 else self.in_string
        return step

    def neg(self, c: int) -> None:
        if c == 0x30:
            self.step = self.zero
        elif c in b"123456789":
            self.step = self.one
        else:
            self.error(c, "in numeric literal")

    def one(self, c: int) -> None:
        if c in _DIGITS:
            return
        return self.zero(c)

    def zero(self, c: int) -> None:
        if c == 0x2E:
            self.step = self.dot
        elif c in b"eE":
            self.step = self.exp
        else:
            return self.end_value(c)

    def dot(self, c: int) -> None:
        if c in _DIGITS:
            self.step = self.dot0
            return
        self.error(c, "after decimal point in numeric literal")

    def dot0(self, c: int) -> None:
        if c in _DIGITS:
            return
        if c in b"eE":
            self.step = self.exp
            return
        return self.end_value(c)

    def exp(self, c: int) -> None:
        if c in b"+-":
            self.step = self.exp_sign
            return
        return self.exp_sign(c)

    def exp_sign(self, c: int) -> None:
        if c in _DIGITS:
            self.step = self.exp0
            return
        self.error(c, "in exponent of numeric literal")

    def exp0(self, c: int) -> None:
        if c in _DIGITS:
            return
        return self.end_value(c)

    def lit(self, rest: str, word: str):
        def step(c: int) -> None:
            if c != ord(rest[0]):
                self.error(c, f"in literal {word} (expecting {quote_char(ord(rest[0]))})")
            self.step = self.lit(rest[1:], word) if len(rest) > 1 else self.end_value
        return step


def syntax_error(data: bytes) -> str | None:
    """encoding/json's checkValid: the SyntaxError message for data, None if valid."""
    s = _Scanner()
    try:
        for c in data:
            s.step(c)
        if s.end_top:
            return None
        s.step(0x20)  # eof(): a final space ends a number or literal
        if s.end_top:
            return None
    except SyntaxError_ as exc:
        return str(exc)
    return "unexpected end of JSON input"
