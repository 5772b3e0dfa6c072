//! Request templates of a custom checkout: text with `{{user}}`, `{{quantity}}`,
//! `{{request_id}}`, `{{round}}` and `{{stock}}` placeholders, parsed once when the spec is built
//! and rendered per request into a reused buffer (no re-parsing on the hot path).

use std::fmt::Write;

use super::CustomError;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// A value a template can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The virtual user's id (a string).
    User,
    /// Units asked for (a number).
    Quantity,
    /// The attempt's request id, unique per user and attempt (a string).
    RequestId,
    /// The round the run is in (a number; 0 when the checkout has no rounds).
    Round,
    /// The stock to reset to (a number; reset templates only).
    Stock,
}

impl Var {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "user" => Var::User,
            "quantity" => Var::Quantity,
            "request_id" => Var::RequestId,
            "round" => Var::Round,
            "stock" => Var::Stock,
            _ => return None,
        })
    }
}

/// How substituted strings are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON document: strings are JSON-escaped (without quotes; the template places
    /// them inside its own quotes).
    Json,
    /// Inside a URL: strings are percent-encoded.
    Url,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    escape: Escape,
}

/// The values of one request.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub user: &'a str,
    pub quantity: u32,
    pub request_id: &'a str,
    pub round: u64,
    pub stock: i64,
}

impl Values<'static> {
    /// Values used to check a template once when the spec is built.
    pub const SAMPLE: Values<'static> = Values {
        user: "u-1",
        quantity: 1,
        request_id: "u-1.0",
        round: 1,
        stock: 100,
    };
}

impl Template {
    /// Parses `raw`; `{{` always opens a placeholder (there is no escape for a literal `{{`).
    pub fn parse(what: &'static str, raw: &str, escape: Escape) -> Result<Self, CustomError> {
        let invalid = |reason: String| CustomError::Template { what, reason };
        if raw.len() > MAX_TEMPLATE_BYTES {
            return Err(invalid(format!("longer than {MAX_TEMPLATE_BYTES} bytes")));
        }
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| invalid("a `{{` is never closed with `}}`".into()))?;
            let name = after[..close].trim();
            let var = Var::parse(name).ok_or_else(|| {
                invalid(format!(
                    "unknown placeholder `{{{{{name}}}}}`; known: {{{{user}}}}, {{{{quantity}}}}, \
                     {{{{request_id}}}}, {{{{round}}}}, {{{{stock}}}}"
                ))
            })?;
            parts.push(Part::Var(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts, escape })
    }

    /// Whether the template uses `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// Appends the template with `values` substituted to `out`.
    pub fn render_into(&self, values: &Values<'_>, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(Var::User) => self.push_str(values.user, out),
                Part::Var(Var::RequestId) => self.push_str(values.request_id, out),
                Part::Var(Var::Quantity) => {
                    let _ = write!(out, "{}", values.quantity);
                }
                Part::Var(Var::Round) => {
                    let _ = write!(out, "{}", values.round);
                }
                Part::Var(Var::Stock) => {
                    let _ = write!(out, "{}", values.stock);
                }
            }
        }
    }

    /// The template with `values` substituted.
    pub fn render(&self, values: &Values<'_>) -> String {
        let mut out = String::new();
        self.render_into(values, &mut out);
        out
    }

    fn push_str(&self, value: &str, out: &mut String) {
        match self.escape {
            Escape::Json => {
                for c in value.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
            }
            Escape::Url => {
                for b in value.bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                        out.push(b as char);
                    } else {
                        let _ = write!(out, "%{b:02X}");
                    }
                }
            }
        }
    }

    /// Parses a JSON body template and checks that it renders to valid JSON.
    pub fn json(what: &'static str, raw: &str) -> Result<Self, CustomError> {
        let template = Self::parse(what, raw, Escape::Json)?;
        let sample = template.render(&Values::SAMPLE);
        serde_json::from_str::<serde_json::Value>(&sample).map_err(|e| CustomError::Template {
            what,
            reason: format!("does not render to JSON ({e}): {sample}"),
        })?;
        Ok(template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_escapes() {
        let t = Template::json(
            "--data",
            r#"{"customer":"{{user}}","qty":{{ quantity }},"key":"{{request_id}}","r":{{round}}}"#,
        )
        .unwrap();
        let values = Values {
            user: "a\"b\\c",
            quantity: 3,
            request_id: "x.1",
            round: 7,
            stock: 0,
        };
        let out = t.render(&values);
        assert_eq!(out, r#"{"customer":"a\"b\\c","qty":3,"key":"x.1","r":7}"#);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["customer"], "a\"b\\c");
        assert!(t.uses(Var::Quantity) && !t.uses(Var::Stock));
        let url = Template::parse("--http-post", "/buy/{{user}}", Escape::Url).unwrap();
        assert_eq!(url.render(&values), "/buy/a%22b%5Cc");
    }

    #[test]
    fn refuses_broken_templates() {
        for (raw, want) in [
            ("{{user", "never closed"),
            ("{{customer}}", "unknown placeholder `{{customer}}`"),
            (r#"{"qty": {{quantity}"#, "never closed"),
            (r#"{"qty": "{{quantity}}""#, "does not render to JSON"),
        ] {
            let err = Template::json("--data", raw).unwrap_err().to_string();
            assert!(err.contains(want), "{raw}: {err}");
        }
        let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(Template::parse("--data", &long, Escape::Json).is_err());
    }
}
