//! `postgres_changes` filters in PostgREST syntax, `column=op.value`. Wrenchline subscribes with
//! equality only (`id=eq.…`, `session_id=eq.…`, `status=eq.pending`); other operators are refused
//! with a clear message rather than half-supported.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub column: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("a filter has the form column=eq.value")]
    Shape,
    #[error("{0:?} is not a column name")]
    Column(String),
    #[error("operator {0:?} is not supported; use eq")]
    Operator(String),
    #[error("the filter value is empty")]
    EmptyValue,
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let (column, rest) = text.split_once('=').ok_or(FilterError::Shape)?;
        if !is_identifier(column) {
            return Err(FilterError::Column(column.to_string()));
        }
        let (op, value) = rest.split_once('.').ok_or(FilterError::Shape)?;
        if op != "eq" {
            return Err(FilterError::Operator(op.to_string()));
        }
        if value.is_empty() {
            return Err(FilterError::EmptyValue);
        }
        Ok(Filter {
            column: column.to_string(),
            value: value.to_string(),
        })
    }

    /// Whether a record (a JSON object) matches: the column's value, as text, equals the value.
    pub fn matches(&self, record: &Value) -> bool {
        match record.get(&self.column) {
            Some(Value::String(s)) => *s == self.value,
            Some(Value::Number(n)) => n.to_string() == self.value,
            Some(Value::Bool(b)) => b.to_string() == self.value,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_equality() {
        let f = Filter::parse("session_id=eq.7b0e6a52-1f7e-4a43-9a0e-2d3c2f1b9c01").unwrap();
        assert_eq!(f.column, "session_id");
        assert!(f.matches(&json!({"session_id": "7b0e6a52-1f7e-4a43-9a0e-2d3c2f1b9c01"})));
        assert!(!f.matches(&json!({"session_id": "other"})));
        assert!(!f.matches(&json!({})));
        assert!(Filter::parse("seq=eq.5")
            .unwrap()
            .matches(&json!({"seq": 5})));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(Filter::parse("id"), Err(FilterError::Shape));
        assert_eq!(Filter::parse("id=1"), Err(FilterError::Shape));
        assert_eq!(
            Filter::parse("id=gt.1"),
            Err(FilterError::Operator("gt".into()))
        );
        assert_eq!(Filter::parse("id=eq."), Err(FilterError::EmptyValue));
        assert_eq!(
            Filter::parse("Id=eq.1"),
            Err(FilterError::Column("Id".into()))
        );
        assert_eq!(
            Filter::parse("id) OR (1=eq.1"),
            Err(FilterError::Column("id) OR (1".into()))
        );
        // The value is taken literally: an injection attempt is just a value that matches nothing.
        let f = Filter::parse("id=eq.1) OR (1=1").unwrap();
        assert_eq!(f.value, "1) OR (1=1");
        assert!(!f.matches(&json!({"id": "1"})));
    }
}
