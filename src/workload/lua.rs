//! `lua`: a small function applied to every item, in Lua 5.4 (mlua over its vendored C
//! interpreter): Rust calls the Lua function once per item, Lua loops over the items and
//! calls a Rust function once per item, against one call of a Lua loop that calls the
//! Lua function itself.
//!
//! Public figure for the pattern: a preloaded Lua function called per item ran about 50x
//! faster than `load` and `eval` per item (brentp/pbr#1); here every variant calls a
//! function loaded once, so what remains between them is the boundary.
//!
//! Every variant computes the same sum of `f(item)` over the same items; the Rust
//! callback is `f` written in Rust, which gives the same integers.

use std::rc::Rc;

use mlua::{Function, Lua};

use super::{runner, shared_as, Input, Placement, Role, Runner, Shared, Variant, Workload};
use crate::error::{Error, Result};

/// Items the pool holds: a run cycles through them.
const ITEMS: usize = 1024;

/// `f` in Lua and the loops that call it (`f` itself, or the Rust function `rust_f`),
/// over the items in the global `items` (1-based, as Lua's tables are).
const CHUNK: &str = r#"
function f(x) return (x * 3 + 1) % 1000003 end
function batch(n)
  local s, items, f = 0, items, f
  for i = 0, n - 1 do s = s + f(items[i % 1024 + 1]) end
  return s
end
function through_rust(n)
  local s, items, g = 0, items, rust_f
  for i = 0, n - 1 do s = s + g(items[i % 1024 + 1]) end
  return s
end
"#;

/// `f` in Rust.
fn f(x: i64) -> i64 {
    (x * 3 + 1) % 1_000_003
}

/// The items, the same for every variant.
fn items(_: &Input) -> Shared {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    Rc::new(
        (0..ITEMS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1_000_000) as i64
            })
            .collect::<Vec<i64>>(),
    )
}

fn failed(e: mlua::Error) -> Error {
    Error::Internal(format!("Lua: {e}"))
}

/// A Lua state with the chunk loaded, the items in its table `items` and `f` in Rust as
/// `rust_f`, and the global function `name` taken out of it.
fn state(shared: &Shared, name: &str) -> Result<(Lua, Function, Rc<Vec<i64>>)> {
    let items = shared_as::<Vec<i64>>(shared);
    let lua = Lua::new();
    let globals = lua.globals();
    globals
        .set("items", lua.create_sequence_from(items.iter().copied()).map_err(failed)?)
        .map_err(failed)?;
    globals
        .set("rust_f", lua.create_function(|_, x: i64| Ok(f(x))).map_err(failed)?)
        .map_err(failed)?;
    lua.load(CHUNK).exec().map_err(failed)?;
    let function = globals.get::<Function>(name).map_err(failed)?;
    Ok((lua, function, items))
}

/// One call of a Lua loop over `n` items (`batch` or `through_rust`).
fn lua_loop(shared: &Shared, name: &str) -> Result<Box<dyn Runner>> {
    let (lua, function, _) = state(shared, name)?;
    runner(move |n| {
        let _state = &lua;
        function.call::<i64>(n as i64).expect("the Lua loop runs") as u64
    })
}

fn batched(_: &Input, shared: &Shared, _: Placement) -> Result<Box<dyn Runner>> {
    lua_loop(shared, "batch")
}

fn through_rust(_: &Input, shared: &Shared, _: Placement) -> Result<Box<dyn Runner>> {
    lua_loop(shared, "through_rust")
}

/// Rust's loop calls the Lua function once per item.
fn per_item(_: &Input, shared: &Shared, _: Placement) -> Result<Box<dyn Runner>> {
    let (lua, function, items) = state(shared, "f")?;
    runner(move |n| {
        let _state = &lua;
        (0..n as usize)
            .map(|i| function.call::<i64>(items[i % ITEMS]).expect("f runs"))
            .sum::<i64>() as u64
    })
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "lua",
        about: "a function per item in Lua 5.4 (mlua, vendored C): Rust calls Lua per item, \
                Lua calls Rust per item, or one Lua loop",
        inputs: vec![Input { name: "items", value: 0, calls_per_iteration: 1_000 }],
        share: items,
        variants: vec![
            Variant::plain(
                "batched",
                Role::Baseline,
                "one call: a Lua loop over the items calls the Lua function",
                batched,
            ),
            Variant::plain(
                "per-item",
                Role::PerCall,
                "Rust's loop calls the Lua function once per item (Function::call)",
                per_item,
            ),
            Variant::plain(
                "rust-callback",
                Role::PerCall,
                "one call: a Lua loop over the items calls a Rust function per item",
                through_rust,
            ),
        ],
        loops: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lua's `f` and Rust's give the same integers, and the loops the same sums.
    #[test]
    fn lua_and_rust_compute_the_same_sum() {
        let shared = items(&Input { name: "items", value: 0, calls_per_iteration: 1 });
        let (_lua, lua_f, items) = state(&shared, "f").unwrap();
        for &x in items.iter().take(50) {
            assert_eq!(lua_f.call::<i64>(x).unwrap(), f(x));
        }
        let want: i64 = (0..3000).map(|i| f(items[i % ITEMS])).sum();
        for name in ["batch", "through_rust"] {
            let (_lua, g, _) = state(&shared, name).unwrap();
            assert_eq!(g.call::<i64>(3000).unwrap(), want, "{name}");
        }
    }
}
