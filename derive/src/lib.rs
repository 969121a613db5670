//! The derives of `shapesafe`: models as structs. Use them through `shapesafe`, which
//! re-exports them with their documentation and examples (`shapesafe::Sequential`,
//! `shapesafe::CustomModule`); the generated code names `::shapesafe` paths.

mod collection;
mod custom;
mod model;
mod sequential;

use syn::{parse_macro_input, DeriveInput};

/// A model whose named fields run in order. See `shapesafe::Sequential`.
#[proc_macro_derive(Sequential, attributes(built, shapes))]
pub fn derive_sequential(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match model::Model::parse(input, "Sequential", false) {
        Ok(m) => sequential::expand(&m).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// A model's fields and parameters, for a `forward` you write. See `shapesafe::CustomModule`.
#[proc_macro_derive(CustomModule, attributes(built, shapes, param))]
pub fn derive_custom_module(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match model::Model::parse(input, "CustomModule", true).and_then(|m| custom::expand(&m)) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
