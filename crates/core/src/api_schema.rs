//! What the index's and the daemon's HTTP APIs share about their schemas:
//! how a JSON request body is read (it must be an object, and a whole
//! number written with a fraction counts as the integer it is), and the
//! fix-ups that make a generated OpenAPI document say what the server
//! really accepts and answers.
//!
//! It parses and describes; it never answers a request or builds a router
//! (each API keeps its own error shape and status codes).

use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayItems, KnownFormat, SchemaFormat};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema};

/// Why a JSON body was not the one an endpoint takes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// The body is JSON but not an object.
    #[error("the body must be a JSON object; see /api/v1/openapi.json for its fields")]
    NotAnObject,
    /// The object lacks a field or has one of the wrong type.
    #[error("the JSON body does not have the fields this endpoint needs ({0}); see /api/v1/openapi.json")]
    Fields(String),
}

/// Reads a request body already parsed as JSON into `T`.
///
/// serde reads a struct from an array of its fields in order, so
/// `["alice", "secret"]` would pass for credentials; every body of both APIs
/// is an object, and anything else is refused.
pub fn object_body<T: DeserializeOwned>(mut value: Value) -> Result<T, BodyError> {
    if !value.is_object() {
        return Err(BodyError::NotAnObject);
    }
    whole_numbers_as_integers(&mut value);
    T::deserialize(value).map_err(|e| BodyError::Fields(e.to_string()))
}

/// Largest magnitude up to which every whole number is exact in an f64.
const EXACT_F64: f64 = 9_007_199_254_740_992.0; // 2^53

/// Rewrites numbers such as `1000.0` as integers, recursively.
///
/// JSON has one number type and JSON Schema counts `1000.0` as an integer,
/// but serde refuses it for an integer field. Only values an f64 holds
/// exactly are rewritten; anything else stays a float and is refused.
fn whole_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() <= EXACT_F64 {
                    // Exact: |f| is at most 2^53.
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// What an operation takes: which shared error answers it can meet.
pub struct OperationInputs<'a> {
    /// Its path, as documented.
    pub path: &'a str,
    /// Whether it reads query or path values.
    pub has_params: bool,
    /// Whether it reads a JSON body.
    pub has_body: bool,
    /// Whether the document says it needs a token.
    pub secured: bool,
}

/// Completes a generated document: bounds every `u32` ([`widen_u32`]) and
/// documents, on every operation that lacks them, the error answers given
/// before a handler runs, with the API's error body `error_schema`: 400 for
/// a query, path or body value that cannot be read, 413/415/422 for a body
/// that is too large, not JSON, or of the wrong shape, and those `more`
/// names for the operation (`(status, description)`).
///
/// Extractors and guards give these, not the handlers, so each handler would
/// otherwise repeat them; the document must list every status a client can meet.
pub fn complete_document(
    doc: &mut OpenApi,
    error_schema: &str,
    more: impl Fn(&OperationInputs) -> Vec<(&'static str, &'static str)>,
) {
    if let Some(components) = doc.components.as_mut() {
        components.schemas.values_mut().for_each(widen_u32);
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            for param in op.parameters.iter_mut().flatten() {
                param.schema.iter_mut().for_each(widen_u32);
            }
            let inputs = OperationInputs {
                path,
                has_params: path_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty()),
                has_body: op.request_body.is_some(),
                secured: op.security.as_ref().is_some_and(|s| !s.is_empty()),
            };
            let mut answers = Vec::new();
            if inputs.has_params || inputs.has_body {
                answers.push(("400", "A query, path or body value that cannot be read"));
            }
            answers.extend(more(&inputs));
            if inputs.has_body {
                answers.push(("413", "The body is larger than this endpoint takes"));
                answers.push(("415", "The body is not sent as application/json"));
                answers.push((
                    "422",
                    "The JSON body lacks a field or has one of the wrong type",
                ));
            }
            for (status, description) in answers {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description, error_schema).into());
            }
        }
    }
}

/// A documented response carrying the API's error body, named `schema_name`.
fn error_response(description: &str, schema_name: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema_name)))
                .build(),
        )
        .build()
}

/// Describes a Rust `u32` as what it accepts, 0 to 4294967295.
///
/// utoipa writes a `u32` as `format: int32, minimum: 0`, and `int32` caps it
/// at 2147483647, so clients and fuzzers would think larger values are
/// refused when the server takes them. An explicit bound given by a handler
/// is kept.
fn widen_u32(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            // utoipa writes the bound of an unsigned type as 0.0.
            let unsigned = match object.minimum {
                Some(utoipa::Number::Int(n)) => n == 0,
                Some(utoipa::Number::UInt(n)) => n == 0,
                Some(utoipa::Number::Float(n)) => n == 0.0,
                None => false,
            };
            if unsigned && object.format == Some(SchemaFormat::KnownFormat(KnownFormat::Int32)) {
                object.format = Some(SchemaFormat::KnownFormat(KnownFormat::Int64));
                object
                    .maximum
                    .get_or_insert(utoipa::Number::UInt(u32::MAX as usize));
            }
            object.properties.values_mut().for_each(widen_u32);
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                widen_u32(items);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Login {
        name: String,
        size: u64,
    }

    #[test]
    fn whole_floats_become_integers_and_others_stay() {
        let mut v =
            serde_json::json!({"a": 150141.0, "b": [2.0, -3.0], "c": 1.5, "d": 1e300, "e": 7});
        whole_numbers_as_integers(&mut v);
        assert_eq!(v["a"], serde_json::json!(150141));
        assert_eq!(v["b"], serde_json::json!([2, -3]));
        assert!(v["c"].is_f64());
        assert!(v["d"].is_f64(), "too large to be exact");
        assert_eq!(v["e"], serde_json::json!(7));
    }

    #[test]
    fn only_objects_are_bodies() {
        let ok: Login = object_body(serde_json::json!({"name": "a", "size": 5.0})).unwrap();
        assert_eq!(
            ok,
            Login {
                name: "a".into(),
                size: 5
            }
        );
        let array = object_body::<Login>(serde_json::json!(["a", 5]));
        assert_eq!(array, Err(BodyError::NotAnObject));
        let half = object_body::<Login>(serde_json::json!({"name": "a", "size": 5.5}));
        assert!(matches!(half, Err(BodyError::Fields(_))), "{half:?}");
    }
}
