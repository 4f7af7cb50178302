//! The lexer of Go's `text/template`: text and actions between `{{` and `}}`, trim markers
//! (`{{- ` and ` -}}`), comments, and the tokens inside actions.

/// A token kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tok {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Assign,
    Declare,
    Pipe,
    Char,
    CharConst,
    Str,
    RawStr,
    Number,
    Bool,
    Variable,
    Dot,
    Field,
    Identifier,
    LeftParen,
    RightParen,
    Nil,
    // Keywords.
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
    Eof,
}

/// A token: kind, byte offset, and its text (trimmed text for `Text`).
#[derive(Clone, Copy, Debug)]
pub struct Token<'a> {
    pub kind: Tok,
    pub pos: usize,
    pub text: &'a str,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits a template into tokens; an error carries the byte offset and Go's message.
pub fn lex(input: &str) -> Result<Vec<Token<'_>>, (usize, String)> {
    let mut l = Lexer { input, b: input.as_bytes(), pos: 0, start: 0, toks: Vec::new(), paren: 0 };
    l.run()?;
    Ok(l.toks)
}

struct Lexer<'a> {
    input: &'a str,
    b: &'a [u8],
    pos: usize,
    start: usize,
    toks: Vec<Token<'a>>,
    paren: i32,
}

impl<'a> Lexer<'a> {
    fn emit(&mut self, kind: Tok) {
        self.toks.push(Token { kind, pos: self.start, text: &self.input[self.start..self.pos] });
        self.start = self.pos;
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = &self.b[self.pos..];
        if rest.len() >= 2 && is_space(rest[0]) && rest[1] == b'-' && rest[2..].starts_with(b"}}") {
            return (true, true);
        }
        (rest.starts_with(b"}}"), false)
    }

    fn left_trim_len(&self, from: usize) -> usize {
        self.b[from..].iter().take_while(|&&c| is_space(c)).count()
    }

    fn run(&mut self) -> Result<(), (usize, String)> {
        loop {
            // Text up to the next action.
            let found = memchr::memmem::find(&self.b[self.pos..], b"{{");
            let Some(off) = found else {
                self.pos = self.b.len();
                if self.pos > self.start {
                    self.emit(Tok::Text);
                }
                self.toks.push(Token { kind: Tok::Eof, pos: self.pos, text: "" });
                return Ok(());
            };
            self.pos += off;
            let after = &self.b[self.pos + 2..];
            let trim = after.len() >= 2 && after[0] == b'-' && is_space(after[1]);
            let text_end = if trim {
                let t = &self.input[self.start..self.pos];
                self.start + t.trim_end_matches([' ', '\t', '\r', '\n']).len()
            } else {
                self.pos
            };
            if text_end > self.start {
                self.toks.push(Token { kind: Tok::Text, pos: self.start, text: &self.input[self.start..text_end] });
            }
            self.start = self.pos;
            // Left delimiter.
            self.pos += 2;
            let after_marker = if trim { 2 } else { 0 };
            if self.b[self.pos + after_marker..].starts_with(b"/*") {
                self.pos += after_marker;
                self.start = self.pos;
                self.comment()?;
                continue;
            }
            self.emit(Tok::LeftDelim);
            self.pos += after_marker;
            self.start = self.pos;
            self.paren = 0;
            self.inside_action()?;
        }
    }

    fn comment(&mut self) -> Result<(), (usize, String)> {
        self.pos += 2;
        let Some(x) = memchr::memmem::find(&self.b[self.pos..], b"*/") else {
            return Err((self.start, "unclosed comment".into()));
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return Err((self.start, "comment ends before closing delimiter".into()));
        }
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            self.pos += self.left_trim_len(self.pos);
        }
        self.start = self.pos;
        Ok(())
    }

    fn inside_action(&mut self) -> Result<(), (usize, String)> {
        loop {
            let (delim, trim) = self.at_right_delim();
            if delim {
                if self.paren != 0 {
                    return Err((self.pos, "unclosed left paren".into()));
                }
                if trim {
                    self.pos += 2;
                    self.start = self.pos;
                }
                self.pos += 2;
                self.emit(Tok::RightDelim);
                if trim {
                    self.pos += self.left_trim_len(self.pos);
                }
                self.start = self.pos;
                return Ok(());
            }
            let Some(c) = self.peek() else {
                return Err((self.pos, "unclosed action".into()));
            };
            self.pos += c.len_utf8();
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.pos -= 1;
                    self.space();
                }
                '=' => self.emit(Tok::Assign),
                ':' => {
                    if self.peek() != Some('=') {
                        return Err((self.pos, "expected :=".into()));
                    }
                    self.pos += 1;
                    self.emit(Tok::Declare);
                }
                '|' => self.emit(Tok::Pipe),
                '"' => self.quoted(b'"', Tok::Str, "quoted string")?,
                '`' => {
                    let Some(x) = memchr::memchr(b'`', &self.b[self.pos..]) else {
                        return Err((self.start, "unterminated raw quoted string".into()));
                    };
                    self.pos += x + 1;
                    self.emit(Tok::RawStr);
                }
                '$' => self.field_or_variable(Tok::Variable)?,
                '\'' => self.quoted(b'\'', Tok::CharConst, "character constant")?,
                '.' => {
                    if self.pos < self.b.len() && !self.b[self.pos].is_ascii_digit() {
                        self.field_or_variable(Tok::Field)?;
                    } else {
                        self.pos -= 1;
                        self.number()?;
                    }
                }
                '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    self.number()?;
                }
                c if is_alnum(c) => {
                    self.pos -= c.len_utf8();
                    self.identifier()?;
                }
                '(' => {
                    self.emit(Tok::LeftParen);
                    self.paren += 1;
                }
                ')' => {
                    self.emit(Tok::RightParen);
                    self.paren -= 1;
                    if self.paren < 0 {
                        return Err((self.start, "unexpected right paren".into()));
                    }
                }
                c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Char),
                c => return Err((self.start, format!("unrecognized character in action: U+{:04X}", c as u32))),
            }
        }
    }

    fn space(&mut self) {
        let mut n = 0;
        while self.pos < self.b.len() && is_space(self.b[self.pos]) {
            self.pos += 1;
            n += 1;
        }
        // A space followed by "-}}" belongs to the trim marker.
        let p = self.pos - 1;
        if self.b[p..].len() >= 2 && is_space(self.b[p]) && self.b[p + 1] == b'-' && self.b[p + 2..].starts_with(b"}}")
        {
            self.pos -= 1;
            if n == 1 {
                self.start = self.pos;
                return;
            }
        }
        self.emit(Tok::Space);
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c as u8) && c.is_ascii() => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.b[self.pos..].starts_with(b"}}"),
        }
    }

    fn field_or_variable(&mut self, kind: Tok) -> Result<(), (usize, String)> {
        if self.at_terminator() {
            self.emit(if kind == Tok::Variable { Tok::Variable } else { Tok::Dot });
            return Ok(());
        }
        self.word()?;
        self.emit(kind);
        Ok(())
    }

    /// Letters, digits and `_`, which must end at a terminator.
    fn word(&mut self) -> Result<(), (usize, String)> {
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        if !self.at_terminator() {
            return Err((self.pos, format!("bad character {:?}", self.peek().unwrap_or(' '))));
        }
        Ok(())
    }

    fn identifier(&mut self) -> Result<(), (usize, String)> {
        self.word()?;
        let kind = match &self.input[self.start..self.pos] {
            "block" => Tok::Block,
            "break" => Tok::Break,
            "continue" => Tok::Continue,
            "define" => Tok::Define,
            "else" => Tok::Else,
            "end" => Tok::End,
            "if" => Tok::If,
            "range" => Tok::Range,
            "nil" => Tok::Nil,
            "template" => Tok::Template,
            "with" => Tok::With,
            "true" | "false" => Tok::Bool,
            _ => Tok::Identifier,
        };
        self.emit(kind);
        Ok(())
    }

    /// A quoted string or character constant up to its closing `end`.
    fn quoted(&mut self, end: u8, kind: Tok, what: &str) -> Result<(), (usize, String)> {
        loop {
            match self.b.get(self.pos) {
                Some(b'\\') => self.pos += 2,
                Some(b'\n') | None => return Err((self.start, format!("unterminated {what}"))),
                Some(&c) if c == end => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
            }
        }
        if self.pos > self.b.len() {
            return Err((self.start, format!("unterminated {what}")));
        }
        self.emit(kind);
        Ok(())
    }

    fn number(&mut self) -> Result<(), (usize, String)> {
        let accept = |l: &mut Self, set: &str| -> bool {
            match l.peek() {
                Some(c) if set.contains(c) => {
                    l.pos += c.len_utf8();
                    true
                }
                _ => false,
            }
        };
        let accept_run = |l: &mut Self, set: &str| while accept(l, set) {};
        accept(self, "+-");
        let mut digits = "0123456789_";
        if accept(self, "0") {
            if accept(self, "xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if accept(self, "oO") {
                digits = "01234567_";
            } else if accept(self, "bB") {
                digits = "01_";
            }
        }
        accept_run(self, digits);
        if accept(self, ".") {
            accept_run(self, digits);
        }
        if digits.len() == 11 && accept(self, "eE") {
            accept(self, "+-");
            accept_run(self, "0123456789_");
        }
        if digits.len() == 23 && accept(self, "pP") {
            accept(self, "+-");
            accept_run(self, "0123456789_");
        }
        accept(self, "i");
        if let Some(c) = self.peek()
            && is_alnum(c)
        {
            self.pos += c.len_utf8();
            return Err((self.start, format!("bad number syntax: {:?}", &self.input[self.start..self.pos])));
        }
        self.emit(Tok::Number);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Tok, &str)> {
        lex(s).unwrap().into_iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(
            kinds("a  \n{{- .X -}}  \n b{{/* c */}}c {{- /* d */ -}} e"),
            vec![
                (Tok::Text, "a"),
                (Tok::LeftDelim, "{{"),
                (Tok::Field, ".X"),
                (Tok::RightDelim, "}}"),
                (Tok::Text, "b"),
                (Tok::Text, "c"),
                (Tok::Text, "e"),
                (Tok::Eof, ""),
            ]
        );
        // "{{-3}}" is the number -3, not a trim marker.
        assert_eq!(kinds("{{-3}}")[1], (Tok::Number, "-3"));
    }

    #[test]
    fn action_tokens() {
        let k = kinds(r#"{{ $x := index .A "k" | printf `%s` 'c' 1.5e3 (.B).C }}"#);
        let kinds_only: Vec<Tok> = k.iter().map(|t| t.0).filter(|t| *t != Tok::Space).collect();
        assert_eq!(
            kinds_only,
            vec![
                Tok::LeftDelim,
                Tok::Variable,
                Tok::Declare,
                Tok::Identifier,
                Tok::Field,
                Tok::Str,
                Tok::Pipe,
                Tok::Identifier,
                Tok::RawStr,
                Tok::CharConst,
                Tok::Number,
                Tok::LeftParen,
                Tok::Field,
                Tok::RightParen,
                Tok::Field,
                Tok::RightDelim,
                Tok::Eof
            ]
        );
        assert!(lex("{{ .A ").is_err());
        assert!(lex("{{ \"x }}").is_err());
    }
}
