//! From a query's Arrow output to Avro: the schema (derived from the Arrow schema, snake_case
//! columns becoming camelCase fields as on every muster topic) and each row's value.

use apache_avro::types::Value;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use muster_schemas::camel_case;
use serde_json::json;

fn avro_type(dt: &DataType) -> anyhow::Result<serde_json::Value> {
    Ok(match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            json!("int")
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => json!("long"),
        DataType::Float32 | DataType::Float64 => json!("double"),
        DataType::Timestamp(_, _) => json!({"type": "long", "logicalType": "timestamp-millis"}),
        other => {
            anyhow::bail!("a column of type {other} has no Avro mapping yet; cast it in the query")
        }
    })
}

/// The Avro record schema of a processor's output.
pub fn schema_for(name: &str, schema: &SchemaRef) -> anyhow::Result<String> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            let t = avro_type(f.data_type())?;
            Ok(if f.is_nullable() {
                json!({"name": camel_case(f.name()), "type": ["null", t], "default": null})
            } else {
                json!({"name": camel_case(f.name()), "type": t})
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let record = {
        let mut c = camel_case(name);
        if let Some(first) = c.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        c
    };
    Ok(json!({
        "type": "record",
        "name": record,
        "namespace": "io.muster.processors",
        "doc": format!("Output of the SQL processor {name}, derived from its query."),
        "fields": fields,
    })
    .to_string())
}

fn cell(array: &dyn Array, row: usize) -> anyhow::Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_owned()),
        DataType::Boolean => Value::Boolean(array.as_boolean().value(row)),
        DataType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row) as i32),
        DataType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row) as i32),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row)),
        DataType::UInt8 => Value::Int(array.as_primitive::<UInt8Type>().value(row) as i32),
        DataType::UInt16 => Value::Int(array.as_primitive::<UInt16Type>().value(row) as i32),
        DataType::Int64 => Value::Long(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => Value::Long(array.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::UInt64 => Value::Long(array.as_primitive::<UInt64Type>().value(row) as i64),
        DataType::Float32 => Value::Double(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(unit, _) => Value::TimestampMillis(match unit {
            TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1000,
            TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => {
                array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000
            }
            TimeUnit::Nanosecond => {
                array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000
            }
        }),
        other => anyhow::bail!("a column of type {other} has no Avro mapping yet"),
    })
}

/// One output row as an Avro record, and its Kafka key (the `event_id` column, if any).
pub fn row_value(batch: &RecordBatch, row: usize) -> anyhow::Result<(Value, Option<String>)> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut key = None;
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        let mut v = cell(col.as_ref(), row)?;
        if f.name() == "event_id"
            && let Value::String(s) = &v
        {
            key = Some(s.clone());
        }
        if f.is_nullable() {
            v = Value::Union(u32::from(v != Value::Null), Box::new(v));
        }
        fields.push((camel_case(f.name()), v));
    }
    Ok((Value::Record(fields), key))
}

/// One output row as JSON, for golden files: timestamps as RFC 3339.
pub fn row_json(batch: &RecordBatch, row: usize) -> anyhow::Result<serde_json::Value> {
    let schema = batch.schema();
    let mut obj = serde_json::Map::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        let v = match cell(col.as_ref(), row)? {
            Value::Null => serde_json::Value::Null,
            Value::String(s) => json!(s),
            Value::Boolean(b) => json!(b),
            Value::Int(i) => json!(i),
            Value::Long(l) => json!(l),
            Value::Double(d) => json!(d),
            Value::TimestampMillis(ms) => json!(
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            ),
            other => json!(format!("{other:?}")),
        };
        obj.insert(camel_case(f.name()), v);
    }
    Ok(serde_json::Value::Object(obj))
}
