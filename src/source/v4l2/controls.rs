//! Live camera controls (brightness, exposure, white balance…) through the
//! `v4l` crate. Each call opens the device for itself and closes it again:
//! a handle held open would keep an unplugged camera's node alive and stop
//! its replacement from appearing.

use serde::Serialize;
use v4l::control::{Control, Description, Flags, MenuItem, Type, Value};

use crate::config::ControlSetting;

/// A control as `GET /api/camera/controls` and `edgecam probe` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlInfo {
    /// The name used in config and URLs: the driver's label in lower case,
    /// words joined by `_` (as `v4l2-ctl` spells them).
    pub name: String,
    /// The driver's own label, e.g. "White Balance, Automatic".
    pub label: String,
    /// "integer", "boolean", "menu", "integer_menu", "button", "integer64",
    /// "bitmask" or "string".
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub minimum: i64,
    pub maximum: i64,
    pub step: u64,
    pub default: i64,
    /// Current value; null for buttons and types read through other means.
    pub value: Option<serde_json::Value>,
    /// Menu items (value → name) for menu controls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub menu: Vec<MenuEntry>,
    pub read_only: bool,
    /// Another control currently overrides this one (e.g. exposure while
    /// auto exposure is on); writes may be ignored by the driver.
    pub inactive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MenuEntry {
    pub value: i64,
    pub name: String,
}

/// Why a control could not be read or changed; decides the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("camera {device} has no control named {name:?}; it has: {known}")]
    UnknownName {
        device: String,
        name: String,
        known: String,
    },
    #[error("control {name:?}: {message}")]
    BadValue { name: String, message: String },
    #[error("camera {device} cannot be reached: {source}")]
    Device {
        device: String,
        source: std::io::Error,
    },
}

/// `"White Balance, Automatic"` → `"white_balance_automatic"`.
pub fn control_name(label: &str) -> String {
    let mut name = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    name.trim_end_matches('_').to_owned()
}

fn kind_name(kind: Type) -> Option<&'static str> {
    Some(match kind {
        Type::Integer => "integer",
        Type::Boolean => "boolean",
        Type::Menu => "menu",
        Type::IntegerMenu => "integer_menu",
        Type::Button => "button",
        Type::Integer64 => "integer64",
        Type::Bitmask => "bitmask",
        Type::String => "string",
        // Class headings and compound (array) controls are not settings a
        // person adjusts; they are left out.
        _ => return None,
    })
}

fn open(device: &str) -> Result<v4l::Device, ControlError> {
    v4l::Device::with_path(device).map_err(|source| ControlError::Device {
        device: device.to_owned(),
        source,
    })
}

/// The controls a person can see, with their descriptions.
fn visible(device: &str, handle: &v4l::Device) -> Result<Vec<Description>, ControlError> {
    let all = handle
        .query_controls()
        .map_err(|source| ControlError::Device {
            device: device.to_owned(),
            source,
        })?;
    Ok(all
        .into_iter()
        .filter(|d| kind_name(d.typ).is_some() && !d.flags.contains(Flags::DISABLED))
        .collect())
}

fn info(handle: &v4l::Device, description: &Description) -> ControlInfo {
    let value = if description.flags.contains(Flags::WRITE_ONLY) {
        None
    } else {
        match handle.control(description.id).map(|c| c.value) {
            Ok(Value::Integer(v)) => Some(serde_json::json!(v)),
            Ok(Value::Boolean(v)) => Some(serde_json::json!(v)),
            Ok(Value::String(v)) => Some(serde_json::json!(v)),
            _ => None,
        }
    };
    let menu = description
        .items
        .iter()
        .flatten()
        .map(|(index, item)| MenuEntry {
            value: i64::from(*index),
            name: match item {
                MenuItem::Name(name) => name.clone(),
                MenuItem::Value(v) => v.to_string(),
            },
        })
        .collect();
    ControlInfo {
        name: control_name(&description.name),
        label: description.name.clone(),
        kind: kind_name(description.typ).unwrap_or("unknown"),
        minimum: description.minimum,
        maximum: description.maximum,
        step: description.step,
        default: description.default,
        value,
        menu,
        read_only: description.flags.contains(Flags::READ_ONLY),
        inactive: description.flags.contains(Flags::INACTIVE),
    }
}

/// Every adjustable control of the camera at `device`, with its value now.
pub fn list(device: &str) -> Result<Vec<ControlInfo>, ControlError> {
    let handle = open(device)?;
    Ok(visible(device, &handle)?
        .iter()
        .map(|d| info(&handle, d))
        .collect())
}

/// Sets the control called `name` and returns it as it is afterwards.
pub fn set(
    device: &str,
    name: &str,
    setting: &ControlSetting,
) -> Result<ControlInfo, ControlError> {
    let handle = open(device)?;
    let controls = visible(device, &handle)?;
    set_on(device, &handle, &controls, name, setting)
}

/// Sets `name` on an open camera whose controls are `controls`.
fn set_on(
    device: &str,
    handle: &v4l::Device,
    controls: &[Description],
    name: &str,
    setting: &ControlSetting,
) -> Result<ControlInfo, ControlError> {
    let Some(description) = controls.iter().find(|d| control_name(&d.name) == name) else {
        return Err(ControlError::UnknownName {
            device: device.to_owned(),
            name: name.to_owned(),
            known: controls
                .iter()
                .map(|d| control_name(&d.name))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let value = value_for(description, setting).map_err(|message| ControlError::BadValue {
        name: name.to_owned(),
        message,
    })?;
    handle
        .set_control(Control {
            id: description.id,
            value,
        })
        .map_err(|err| ControlError::BadValue {
            name: name.to_owned(),
            message: format!("the driver refused {setting}: {err}"),
        })?;
    Ok(info(handle, description))
}

/// Checks `setting` against the control's type and range and turns it into
/// the value the driver takes.
fn value_for(description: &Description, setting: &ControlSetting) -> Result<Value, String> {
    if description.flags.contains(Flags::READ_ONLY) {
        return Err("is read-only".to_owned());
    }
    let in_range = |v: i64| -> Result<Value, String> {
        let step = i64::try_from(description.step.max(1)).unwrap_or(1);
        if v < description.minimum || v > description.maximum {
            Err(format!(
                "{v} is out of range: must be {}–{}",
                description.minimum, description.maximum
            ))
        } else if (v - description.minimum) % step != 0 {
            Err(format!(
                "{v} is not on a step of {step} from {}",
                description.minimum
            ))
        } else {
            Ok(Value::Integer(v))
        }
    };
    match (description.typ, setting) {
        (Type::Boolean, ControlSetting::Bool(b)) => Ok(Value::Boolean(*b)),
        (Type::Boolean, ControlSetting::Int(v @ (0 | 1))) => Ok(Value::Boolean(*v == 1)),
        (Type::Integer | Type::Integer64 | Type::Bitmask, ControlSetting::Int(v)) => in_range(*v),
        (Type::Menu | Type::IntegerMenu, setting) => {
            let items = description.items.as_deref().unwrap_or_default();
            let found = items.iter().find(|(index, item)| match (setting, item) {
                (ControlSetting::Int(v), _) => i64::from(*index) == *v,
                (ControlSetting::Text(t), MenuItem::Name(n)) => n.eq_ignore_ascii_case(t),
                (ControlSetting::Text(t), MenuItem::Value(n)) => n.to_string() == *t,
                _ => false,
            });
            match found {
                Some((index, _)) => Ok(Value::Integer(i64::from(*index))),
                None => Err(format!(
                    "{setting} is not one of its items: {}",
                    items
                        .iter()
                        .map(|(i, item)| format!("{i} = {item}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        (Type::Button, ControlSetting::Bool(true)) => Ok(Value::None),
        (Type::String, ControlSetting::Text(t)) => Ok(Value::String(t.clone())),
        (kind, setting) => Err(format!(
            "{setting} does not fit a {} control",
            kind_name(kind).unwrap_or("compound")
        )),
    }
}

/// Applies `[camera.controls]` to the camera at `device` (opened and
/// queried once for all of them), logging each result; one that fails does
/// not stop the others or the camera.
pub fn apply_all(device: &str, settings: &std::collections::BTreeMap<String, ControlSetting>) {
    if settings.is_empty() {
        return;
    }
    let opened = open(device).and_then(|handle| {
        let controls = visible(device, &handle)?;
        Ok((handle, controls))
    });
    let (handle, controls) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            tracing::warn!("camera.controls: {err}");
            return;
        }
    };
    for (name, setting) in settings {
        match set_on(device, &handle, &controls, name, setting) {
            Ok(_) => tracing::info!("camera control {name} = {setting}"),
            Err(err) => tracing::warn!("camera.controls.{name}: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_v4l2_ctl() {
        assert_eq!(control_name("Brightness"), "brightness");
        assert_eq!(
            control_name("White Balance, Automatic"),
            "white_balance_automatic"
        );
        assert_eq!(
            control_name("Exposure Time, Absolute"),
            "exposure_time_absolute"
        );
        assert_eq!(control_name("Power Line Frequency"), "power_line_frequency");
        assert_eq!(control_name(" 4-Bit  Test "), "4_bit_test");
    }

    fn integer(min: i64, max: i64, step: u64) -> Description {
        Description {
            id: 0x0098_0900,
            typ: Type::Integer,
            name: "Brightness".to_owned(),
            minimum: min,
            maximum: max,
            step,
            default: 128,
            flags: Flags::from(0),
            items: None,
        }
    }

    #[test]
    fn integers_are_checked_against_range_and_step() {
        let d = integer(0, 255, 1);
        assert_eq!(
            value_for(&d, &ControlSetting::Int(140)),
            Ok(Value::Integer(140))
        );
        let err = value_for(&d, &ControlSetting::Int(300)).unwrap_err();
        assert!(err.contains("0–255"), "{err}");
        let err = value_for(&integer(0, 100, 10), &ControlSetting::Int(15)).unwrap_err();
        assert!(err.contains("step of 10"), "{err}");
        let err = value_for(&d, &ControlSetting::Text("bright".into())).unwrap_err();
        assert!(err.contains("integer"), "{err}");
    }

    #[test]
    fn menus_take_an_item_name_or_index() {
        let d = Description {
            typ: Type::Menu,
            name: "Power Line Frequency".to_owned(),
            items: Some(vec![
                (0, MenuItem::Name("Disabled".into())),
                (1, MenuItem::Name("50 Hz".into())),
                (2, MenuItem::Name("60 Hz".into())),
            ]),
            ..integer(0, 2, 1)
        };
        assert_eq!(
            value_for(&d, &ControlSetting::Text("50 hz".into())),
            Ok(Value::Integer(1))
        );
        assert_eq!(
            value_for(&d, &ControlSetting::Int(2)),
            Ok(Value::Integer(2))
        );
        let err = value_for(&d, &ControlSetting::Text("45 Hz".into())).unwrap_err();
        assert!(err.contains("1 = 50 Hz"), "{err}");
    }

    #[test]
    fn read_only_controls_refuse_writes() {
        let d = Description {
            flags: Flags::READ_ONLY,
            ..integer(0, 255, 1)
        };
        assert!(value_for(&d, &ControlSetting::Int(1))
            .unwrap_err()
            .contains("read-only"));
    }
}
