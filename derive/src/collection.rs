//! What both derives generate alike: the built struct, `BuildOnDevice` and `TensorCollection`.

use crate::model::{as_f64, nest, FieldKind, Init, Model};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

/// Paths the generated code uses, through the hidden re-exports of `shapesafe::__derive`.
pub fn krate() -> TokenStream {
    quote!(::shapesafe::__derive)
}

/// The built struct and its `BuildOnDevice` and `TensorCollection` impls.
///
/// The struct is `Name<builder params.., E, D, _Field = <FieldBuilder as BuildOnDevice<D, E>>::Built, ..>`:
/// one defaulted type parameter per sub-module keeps the struct free of where-clauses (a
/// field typed by the projection itself would need `FieldBuilder: BuildOnDevice<D, E>` on
/// the struct, which `TensorCollection::To<E2, D2>` cannot promise for every `E2`), so
/// `Name<f32, Cpu>` is the built model and `Name<E2, D2, ..>` its copy on another device.
pub fn generate(m: &Model) -> TokenStream {
    let k = krate();
    let (vis, builder, built) = (&m.vis, &m.builder, &m.built);
    let bparams = m.builder_params();
    let bargs = m.builder_arg_list();
    let bwhere = m.builder_where();
    let btype = m.builder_type();
    let btype_params = m.builder_type_params();

    let mut struct_params = Vec::new();
    let mut struct_fields = Vec::new();
    let mut module_params = Vec::new();
    let mut has_normal = false;
    let mut has_params = false;
    for f in &m.fields {
        let (ident, ty) = (&f.ident, &f.ty);
        let doc = format!("The `{ident}` field, built on the device.");
        match &f.kind {
            FieldKind::Module => {
                let p = Model::module_param(f);
                struct_params
                    .push(quote_spanned!(f.span=> #p = <#ty as #k::BuildOnDevice<D, E>>::Built));
                struct_fields.push(quote_spanned!(f.span=> #[doc = #doc] #vis #ident: #p));
                module_params.push(p);
            }
            FieldKind::Param(init) => {
                has_params = true;
                has_normal |= matches!(**init, Init::Normal(..));
                struct_fields.push(
                    quote_spanned!(f.span=> #[doc = #doc] #vis #ident: #k::Tensor<#ty, E, D>),
                );
            }
        }
    }

    let struct_doc = format!(
        "The model [`{builder}`] builds on a device with `dev.build_module::<{builder}, f32>()`: \
         each field holds its layer, built. `E` is the dtype and `D` the device; the \
         parameters after them default to the fields' built types."
    );
    let marker = quote!(::core::marker::PhantomData<fn() -> (E, D, #(#btype_params,)*)>);
    let struct_def = quote! {
        #[doc = #struct_doc]
        #[derive(Debug, Clone)]
        #vis struct #built<#(#bparams,)* E: #k::Dtype, D: #k::Device<E>, #(#struct_params,)*>
        where #(#bwhere,)*
        {
            #(#struct_fields,)*
            #[doc(hidden)]
            __dtype_device: #marker,
        }
    };

    let build_where: Vec<TokenStream> = m
        .modules()
        .map(|f| {
            let ty = &f.ty;
            quote_spanned!(f.span=> #ty: #k::BuildOnDevice<D, E>)
        })
        .collect();
    let build_on_device = quote! {
        impl<#(#bparams,)* E: #k::Dtype, D: #k::Device<E>> #k::BuildOnDevice<D, E> for #btype
        where
            #(#bwhere,)*
            #(#build_where,)*
            #built<#(#bargs,)* E, D>: #k::BuildModule<D, E>,
        {
            type Built = #built<#(#bargs,)* E, D>;
        }
    };

    // Parameter names are the field names, so a state dict reads `conv1.weight`.
    let mut visits = Vec::new();
    let mut names = Vec::new();
    for f in &m.fields {
        let ident = &f.ident;
        let name = ident.to_string();
        names.push(quote!(#ident));
        visits.push(match &f.kind {
            FieldKind::Module => quote_spanned! {f.span=>
                Self::module(#name, |s| &s.#ident, |s| &mut s.#ident)
            },
            FieldKind::Param(init) => {
                let options = match &**init {
                    Init::Zeros => quote!(#k::TensorOptions::reset_to_zeros()),
                    Init::Ones => quote!(#k::TensorOptions::reset_to_ones()),
                    Init::Uniform(lo, hi) => {
                        let (lo, hi) = (as_f64(lo), as_f64(hi));
                        quote!(#k::TensorOptions::reset_with(|t| #k::fill_uniform(t, #lo, #hi)))
                    }
                    Init::Normal(mean, std) => {
                        let (mean, std) = (as_f64(mean), as_f64(std));
                        quote!(#k::TensorOptions::reset_with(|t| #k::fill_normal(t, #mean, #std)))
                    }
                    Init::FanIn(n) => {
                        quote!(#k::TensorOptions::reset_with(|t| #k::fill_fan_in(t, (#n) as usize)))
                    }
                };
                quote_spanned! {f.span=>
                    Self::tensor(#name, |s| &s.#ident, |s| &mut s.#ident, #options)
                }
            }
        });
    }
    let visits = nest(visits);
    let pattern = nest(names.clone());
    let float_bound = if has_params {
        quote!(E: #k::Float + #k::SampleUniform,)
    } else {
        quote!()
    };
    let normal_bound = if has_normal {
        quote!(#k::StandardNormal: #k::Distribution<E>,)
    } else {
        quote!()
    };
    let to_params: Vec<TokenStream> = module_params
        .iter()
        .map(|p| quote!(<#p as #k::TensorCollection<E, D>>::To<E2, D2>))
        .collect();
    let collection = quote! {
        impl<#(#bparams,)* E: #k::Dtype, D: #k::Device<E>, #(#module_params,)*>
            #k::TensorCollection<E, D> for #built<#(#bargs,)* E, D, #(#module_params,)*>
        where
            #(#bwhere,)*
            #(#module_params: #k::TensorCollection<E, D>,)*
            #float_bound
            #normal_bound
        {
            type To<E2: #k::Dtype, D2: #k::Device<E2>> = #built<#(#bargs,)* E2, D2, #(#to_params,)*>;

            fn iter_tensors<V: #k::ModuleVisitor<Self, E, D>>(
                visitor: &mut V,
            ) -> ::core::result::Result<::core::option::Option<Self::To<V::E2, V::D2>>, V::Err> {
                visitor.visit_fields(#visits, |#pattern| #built {
                    #(#names,)*
                    __dtype_device: ::core::marker::PhantomData,
                })
            }
        }
    };
    // The builder's fields are types, never values anyone reads; reading them once here
    // keeps the dead-code lint quiet about them.
    let field_idents = m.fields.iter().map(|f| &f.ident);
    let touch = quote! {
        const _: () = {
            impl<#(#bparams,)*> #btype where #(#bwhere,)* {
                #[allow(dead_code)]
                fn __shapesafe_fields(&self) {
                    let _ = (#(&self.#field_idents,)*);
                }
            }
        };
    };
    quote! {
        #struct_def
        #build_on_device
        #collection
        #touch
    }
}
