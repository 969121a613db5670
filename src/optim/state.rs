//! Optimizer state as plain named data: [`StateDict`], the [`OptimizerState`] trait, and
//! the per-parameter buffers that the optimizers share.
//!
//! State is keyed by the parameter's name from dfdx's `TensorCollection` walk (`0.weight`),
//! never by tensor id, so it survives a process restart. Keys follow PyTorch's names:
//!
//! - `state.<param>.<buffer>`: tensors, e.g. `state.0.weight.exp_avg`, with the parameter's shape;
//! - `state.<param>.step`: a scalar, the number of updates this parameter has had;
//! - `group.<hyperparameter>`: scalars, e.g. `group.lr` (PyTorch's `param_groups[0]`).

use crate::optim::cpu::{self, GradAndValues, Raw};
use crate::optim::params::{trainable_params, ParamInfo};
use crate::{Error, Result};
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::optim::WeightDecay;
use dfdx::prelude::{Device, Dtype, HasShape, ReshapeTo, Shape, Storage, Tensor};
use dfdx::tensor::safetensors::SafeDtype;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The numbers of one state tensor, in their own precision.
///
/// ```
/// use shapesafe::optim::StateData;
/// let data = StateData::F32(vec![1.0, 2.0]);
/// assert_eq!(data.len(), 2);
/// assert_eq!(data.dtype_name(), "f32");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum StateData {
    /// Single precision.
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
}

impl StateData {
    /// How many numbers there are.
    ///
    /// ```
    /// assert_eq!(shapesafe::optim::StateData::F64(vec![0.0; 3]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            StateData::F32(v) => v.len(),
            StateData::F64(v) => v.len(),
        }
    }

    /// Whether there are no numbers.
    ///
    /// ```
    /// assert!(shapesafe::optim::StateData::F32(Vec::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `"f32"` or `"f64"`, for messages.
    ///
    /// ```
    /// assert_eq!(shapesafe::optim::StateData::F64(vec![]).dtype_name(), "f64");
    /// ```
    pub fn dtype_name(&self) -> &'static str {
        match self {
            StateData::F32(_) => "f32",
            StateData::F64(_) => "f64",
        }
    }
}

/// One named state tensor: its dims and its numbers, row-major.
///
/// ```
/// use shapesafe::optim::{StateData, StateTensor};
/// let t = StateTensor::new(vec![2, 2], StateData::F64(vec![0.0; 4])).unwrap();
/// assert_eq!(t.shape, vec![2, 2]);
/// assert!(StateTensor::new(vec![3], StateData::F64(vec![0.0; 4])).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// The dims, e.g. `[4, 3]` for the moment of a `Linear<3, 4>` weight.
    pub shape: Vec<usize>,
    /// The numbers; their count must be the product of `shape`.
    pub data: StateData,
}

impl StateTensor {
    /// A tensor of `shape` holding `data`, or [`Error::ShapeMismatch`] when the counts differ.
    ///
    /// ```
    /// use shapesafe::optim::{StateData, StateTensor};
    /// let t = StateTensor::new(vec![3], StateData::F32(vec![1.0, 2.0, 3.0])).unwrap();
    /// assert_eq!(t.data.len(), 3);
    /// ```
    pub fn new(shape: Vec<usize>, data: StateData) -> Result<Self> {
        match element_count(&shape) {
            Some(n) if n == data.len() => Ok(Self { shape, data }),
            _ => Err(Error::ShapeMismatch {
                what: "a state tensor's data".to_string(),
                expected: shape,
                found: vec![data.len()],
            }),
        }
    }
}

/// The product of `shape`, or `None` if it overflows.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// An optimizer's whole state as plain data, like PyTorch's `optimizer.state_dict()`:
/// named tensors (momentum buffers, moments) and named scalars (step counts, hyperparameters).
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::{OptimizerState, Sgd};
/// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
/// let opt = Sgd::new(&model, SgdConfig { lr: 0.1, momentum: Some(Momentum::Classic(0.9)), weight_decay: None });
/// let dict = opt.state_dict().unwrap();
/// assert_eq!(dict.scalars["group.lr"], 0.1);
/// assert_eq!(dict.tensors["state.weight.momentum_buffer"].shape, vec![2, 3]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    /// Tensors by key, e.g. `state.0.weight.momentum_buffer`.
    pub tensors: BTreeMap<String, StateTensor>,
    /// Scalars by key, e.g. `state.0.weight.step` or `group.lr`.
    pub scalars: BTreeMap<String, f64>,
}

/// Saving and strictly restoring an optimizer's state, like PyTorch's
/// `state_dict()` / `load_state_dict()`.
///
/// Loading is strict and all or nothing: every key this optimizer needs must be present
/// with the right shape and dtype, and no other key may be; on any error the optimizer
/// is unchanged. Hyperparameters (`group.*`) are restored too, as in PyTorch.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::optim::{Adam, OptimizerState};
/// let model = Cpu::default().build_module::<Linear<3, 2>, f32>();
/// let a = Adam::new(&model, AdamConfig::default());
/// let mut b = Adam::new(&model, AdamConfig { lr: 0.5, ..Default::default() });
/// b.load_state_dict(&a.state_dict().unwrap()).unwrap();
/// assert_eq!(b.cfg.lr, AdamConfig::default().lr);
/// ```
pub trait OptimizerState {
    /// The state as plain data (a copy; the optimizer is not changed).
    fn state_dict(&self) -> Result<StateDict>;
    /// Replaces the state with `state`, or returns an error and changes nothing.
    fn load_state_dict(&mut self, state: &StateDict) -> Result<()>;
}

/// The float types optimizer state can be stored in: `f32` and `f64`.
///
/// ```
/// use shapesafe::optim::{StateData, StateDtype};
/// let data = f32::to_state_data(vec![1.5]);
/// assert_eq!(data, StateData::F32(vec![1.5]));
/// assert_eq!(f64::from_state_data(&data), None);
/// ```
pub trait StateDtype: Dtype + SafeDtype {
    /// Wraps numbers of this type.
    fn to_state_data(values: Vec<Self>) -> StateData;
    /// The numbers, if `data` holds this type.
    fn from_state_data(data: &StateData) -> Option<Vec<Self>>;
    /// `"f32"` or `"f64"`, for messages.
    const NAME: &'static str;
}

impl StateDtype for f32 {
    fn to_state_data(values: Vec<Self>) -> StateData {
        StateData::F32(values)
    }
    fn from_state_data(data: &StateData) -> Option<Vec<Self>> {
        match data {
            StateData::F32(v) => Some(v.clone()),
            StateData::F64(_) => None,
        }
    }
    const NAME: &'static str = "f32";
}

impl StateDtype for f64 {
    fn to_state_data(values: Vec<Self>) -> StateData {
        StateData::F64(values)
    }
    fn from_state_data(data: &StateData) -> Option<Vec<Self>> {
        match data {
            StateData::F64(v) => Some(v.clone()),
            StateData::F32(_) => None,
        }
    }
    const NAME: &'static str = "f64";
}

/// An error about an in-memory state dict (the empty path reads as "in-memory data").
pub(crate) fn state_error(reason: String) -> Error {
    Error::Weights {
        path: PathBuf::new(),
        reason,
    }
}

/// What a buffer starts as before a parameter's first update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Init {
    Zeros,
    Ones,
}

impl Init {
    fn value(self) -> f64 {
        match self {
            Init::Zeros => 0.0,
            Init::Ones => 1.0,
        }
    }
}

/// Which buffers an optimizer keeps per parameter under its current config, in order,
/// and whether it counts steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub buffers: Vec<(&'static str, Init)>,
    pub counts_steps: bool,
}

/// One state buffer, flattened to 1-D so that parameters of every shape fit in one map.
///
/// The composed ops keep it as a tensor (a contiguous reshape shares the data); the fused
/// CPU path keeps it as the device's own storage, which it updates in place. Either is
/// converted to the other when the path that uses it changes.
#[derive(Clone, Debug)]
pub(crate) enum Buffer<E: Dtype, D: Device<E>> {
    /// For the composed ops.
    Tensor(Tensor<(usize,), E, D>),
    /// For the fused CPU path: a `Vec` underneath.
    Host(Raw<E, D>),
}

impl<E: Dtype, D: Device<E>> Buffer<E, D> {
    /// A buffer holding `values`: host storage if `host` and the device has it, else a tensor.
    fn new(dev: &D, values: Vec<E>, host: bool) -> Result<Self, D::Err> {
        if host {
            let mut storage = <D as Storage<E>>::try_alloc_len(dev, values.len())?;
            if let Some(dst) = cpu::view_mut::<E, E, D>(&mut storage) {
                dst.copy_from_slice(&values);
                return Ok(Buffer::Host(storage));
            }
        }
        let n = values.len();
        Ok(Buffer::Tensor(dev.try_tensor_from_vec(values, (n,))?))
    }

    /// How many numbers it holds.
    fn len(&self) -> usize {
        match self {
            Buffer::Tensor(t) => t.shape().0,
            Buffer::Host(v) => cpu::view::<E, E, D>(v).map_or(0, <[E]>::len),
        }
    }

    /// Its numbers, copied to the host.
    fn values(&self) -> Vec<E> {
        match self {
            Buffer::Tensor(t) => t.as_vec(),
            Buffer::Host(v) => cpu::view::<E, E, D>(v).map_or_else(Vec::new, <[E]>::to_vec),
        }
    }

    /// The host storage, converted from a tensor first if need be; `None` on a device
    /// without host storage.
    fn host_mut(&mut self, dev: &D) -> Result<Option<&mut Raw<E, D>>, D::Err> {
        if let Buffer::Tensor(_) = self {
            *self = Buffer::new(dev, self.values(), true)?;
        }
        Ok(match self {
            Buffer::Host(v) => Some(v),
            Buffer::Tensor(_) => None,
        })
    }
}

/// One parameter's state: its update count and its buffers.
#[derive(Clone, Debug)]
pub(crate) struct ParamState<E: Dtype, D: Device<E>> {
    pub step: u64,
    pub buffers: Vec<Buffer<E, D>>,
}

impl<E: Dtype, D: Device<E>> ParamState<E, D> {
    /// Buffer `i` as a tensor shaped like `param`, for the composed ops.
    pub fn buffer<S: Shape>(
        &self,
        i: usize,
        param: &Tensor<S, E, D>,
    ) -> Result<Tensor<S, E, D>, D::Err> {
        let flat = match &self.buffers[i] {
            Buffer::Tensor(t) => t.clone(),
            host => {
                let values = host.values();
                let n = values.len();
                param.device().try_tensor_from_vec(values, (n,))?
            }
        };
        flat.try_reshape_like(param.shape())
    }

    /// Stores `value` (shaped like its parameter) as buffer `i`, for the composed ops.
    pub fn set_buffer<S: Shape>(&mut self, i: usize, value: Tensor<S, E, D>) -> Result<(), D::Err> {
        let n = value.shape().num_elements();
        self.buffers[i] = Buffer::Tensor(value.try_reshape_like(&(n,))?);
        Ok(())
    }
}

/// Every parameter's state, by parameter name.
pub(crate) type StateMap<E, D> = BTreeMap<String, ParamState<E, D>>;

/// The per-parameter state of one optimizer, keyed by parameter name.
#[derive(Clone, Debug)]
pub(crate) struct ParamStates<E: Dtype, D: Device<E>> {
    /// The model's trainable parameters, recorded when the optimizer was built, so that
    /// `state_dict` is complete even before the first step and loading can be strict.
    params: Vec<ParamInfo>,
    device: Option<D>,
    states: StateMap<E, D>,
    scratch: cpu::Scratch<E, D>,
}

/// The largest step count an f64 scalar holds exactly.
const MAX_STEP: f64 = 9_007_199_254_740_992.0;

impl<E: Dtype, D: Device<E>> ParamStates<E, D> {
    /// Records `model`'s trainable parameters; buffers are allocated on first use.
    pub fn new<M: TensorCollection<E, D>>(model: &M) -> Self {
        let (params, device) = trainable_params(model);
        Self {
            params,
            device,
            states: BTreeMap::new(),
            scratch: cpu::Scratch::default(),
        }
    }

    /// Whether new buffers go to host storage: the fused CPU path is on for this thread
    /// (see [`crate::kernels::with_composed_ops`]).
    fn host(&self) -> bool {
        cpu::serves::<E, D>()
    }

    /// Whether `param` takes the fused CPU path: it is on, the device is the CPU with f32
    /// or f64, and `param`'s memory is laid out as its shape says.
    pub fn fused_for<S: Shape>(&self, param: &Tensor<S, E, D>) -> Result<bool, D::Err> {
        Ok(self.host() && cpu::is_contiguous(param)?)
    }

    /// The state of parameter `name`, created with `layout`'s initial values (and step 0)
    /// if it has none yet or if its buffers no longer fit `param`.
    pub fn get_or_init<S: Shape>(
        &mut self,
        name: &str,
        param: &Tensor<S, E, D>,
        layout: &Layout,
    ) -> Result<&mut ParamState<E, D>, D::Err> {
        let host = self.host();
        state_for(
            &mut self.states,
            &mut self.params,
            host,
            name,
            param,
            layout,
        )
    }

    /// For the fused path: the state of `name` as [`ParamStates::get_or_init`] gives it,
    /// with every buffer in host storage, and the scratch buffers, at least as long as
    /// `param`; `None` on a device without host storage.
    pub fn host_slot<S: Shape>(
        &mut self,
        name: &str,
        param: &Tensor<S, E, D>,
        layout: &Layout,
    ) -> Result<Option<HostSlot<'_, E, D>>, D::Err> {
        let n = param.shape().num_elements();
        let dev = param.device();
        let state = state_for(
            &mut self.states,
            &mut self.params,
            true,
            name,
            param,
            layout,
        )?;
        let scratch = self.scratch.reserve(dev, n)?;
        let mut buffers = Vec::with_capacity(state.buffers.len());
        for b in &mut state.buffers {
            match b.host_mut(dev)? {
                Some(v) => buffers.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(HostSlot {
            step: &mut state.step,
            buffers,
            scratch,
        }))
    }

    /// Writes every parameter's state (initial values for parameters not yet updated)
    /// and the hyperparameters into a [`StateDict`].
    pub fn to_dict(&self, layout: &Layout, group: &[(&str, f64)]) -> Result<StateDict>
    where
        E: StateDtype,
    {
        let mut dict = StateDict::default();
        for (key, value) in group {
            dict.scalars.insert(format!("group.{key}"), *value);
        }
        for info in &self.params {
            let n = element_count(&info.shape).unwrap_or(0);
            let state = self.states.get(&info.name);
            for (i, &(buffer, init)) in layout.buffers.iter().enumerate() {
                let values = match state.and_then(|s| s.buffers.get(i)) {
                    Some(b) => b.values(),
                    None => vec![crate::optim::params::scalar::<E>(init.value()); n],
                };
                dict.tensors.insert(
                    format!("state.{}.{buffer}", info.name),
                    StateTensor {
                        shape: info.shape.clone(),
                        data: E::to_state_data(values),
                    },
                );
            }
            if layout.counts_steps {
                let step = state.map_or(0, |s| s.step);
                dict.scalars
                    .insert(format!("state.{}.step", info.name), step as f64);
            }
        }
        Ok(dict)
    }

    /// Reads `dict` strictly: the hyperparameters named in `group` (returned in that order),
    /// and for every recorded parameter exactly `layout`'s buffers and step. Nothing is
    /// changed; call [`ParamStates::commit`] with the result.
    pub fn parse_dict(
        &self,
        dict: &StateDict,
        group: &[&str],
        layout_for: impl FnOnce(&[f64]) -> Result<Layout>,
    ) -> Result<(Vec<f64>, StateMap<E, D>)>
    where
        E: StateDtype,
    {
        let mut used_scalars = BTreeSet::new();
        let mut used_tensors = BTreeSet::new();
        let mut hyper = Vec::with_capacity(group.len());
        for key in group {
            let full = format!("group.{key}");
            let value = *dict
                .scalars
                .get(&full)
                .ok_or_else(|| state_error(format!("the key {full:?} is missing")))?;
            if !value.is_finite() {
                return Err(state_error(format!(
                    "{full} is {value}, not a finite number"
                )));
            }
            hyper.push(value);
            used_scalars.insert(full);
        }
        let layout = layout_for(&hyper)?;

        let mut states = BTreeMap::new();
        for info in &self.params {
            let n = element_count(&info.shape).unwrap_or(0);
            let mut buffers = Vec::with_capacity(layout.buffers.len());
            for &(buffer, _) in &layout.buffers {
                let key = format!("state.{}.{buffer}", info.name);
                let t = dict
                    .tensors
                    .get(&key)
                    .ok_or_else(|| state_error(format!("the key {key:?} is missing")))?;
                if t.shape != info.shape {
                    return Err(Error::ShapeMismatch {
                        what: key,
                        expected: info.shape.clone(),
                        found: t.shape.clone(),
                    });
                }
                let values = E::from_state_data(&t.data).ok_or_else(|| {
                    state_error(format!(
                        "{key} is stored as {}, but the optimizer uses {}",
                        t.data.dtype_name(),
                        E::NAME
                    ))
                })?;
                if values.len() != n {
                    return Err(Error::ShapeMismatch {
                        what: format!("the data of {key}"),
                        expected: vec![n],
                        found: vec![values.len()],
                    });
                }
                let dev = self.device.clone().unwrap_or_default();
                buffers.push(Buffer::new(&dev, values, self.host()).map_err(Error::device)?);
                used_tensors.insert(key);
            }
            let mut step = 0;
            if layout.counts_steps {
                let key = format!("state.{}.step", info.name);
                let value = *dict
                    .scalars
                    .get(&key)
                    .ok_or_else(|| state_error(format!("the key {key:?} is missing")))?;
                if !(0.0..=MAX_STEP).contains(&value) || value.fract() != 0.0 {
                    return Err(state_error(format!(
                        "{key} is {value}, not a whole number of steps"
                    )));
                }
                step = value as u64;
                used_scalars.insert(key);
            }
            states.insert(info.name.clone(), ParamState { step, buffers });
        }

        let unexpected = dict
            .tensors
            .keys()
            .filter(|k| !used_tensors.contains(*k))
            .chain(dict.scalars.keys().filter(|k| !used_scalars.contains(*k)))
            .next();
        if let Some(key) = unexpected {
            return Err(state_error(format!(
                "the key {key:?} is unexpected: this optimizer, with this model and config, has no such entry"
            )));
        }
        Ok((hyper, states))
    }

    /// Replaces all state with what [`ParamStates::parse_dict`] returned.
    pub fn commit(&mut self, states: StateMap<E, D>) {
        self.states = states;
    }
}

/// The state of parameter `name` in `states`, created with `layout`'s initial values (and
/// step 0, in host storage if `host`) if it has none yet or if its buffers no longer fit
/// `param`; `name` joins `params` if it is new.
fn state_for<'s, S: Shape, E: Dtype, D: Device<E>>(
    states: &'s mut StateMap<E, D>,
    params: &mut Vec<ParamInfo>,
    host: bool,
    name: &str,
    param: &Tensor<S, E, D>,
    layout: &Layout,
) -> Result<&'s mut ParamState<E, D>, D::Err> {
    let n = param.shape().num_elements();
    let fresh = || -> Result<ParamState<E, D>, D::Err> {
        let mut buffers = Vec::with_capacity(layout.buffers.len());
        for &(_, init) in &layout.buffers {
            let values = vec![crate::optim::params::scalar::<E>(init.value()); n];
            buffers.push(Buffer::new(param.device(), values, host)?);
        }
        Ok(ParamState { step: 0, buffers })
    };
    if !params.iter().any(|p| p.name == name) {
        params.push(ParamInfo {
            name: name.to_string(),
            shape: param.shape().concrete().into(),
        });
    }
    match states.entry(name.to_string()) {
        Entry::Occupied(mut slot) => {
            let s = slot.get();
            let fits =
                s.buffers.len() == layout.buffers.len() && s.buffers.iter().all(|b| b.len() == n);
            if !fits {
                slot.insert(fresh()?);
            }
            Ok(slot.into_mut())
        }
        Entry::Vacant(slot) => Ok(slot.insert(fresh()?)),
    }
}

/// What the fused path works on for one parameter: its update count, its state buffers
/// in layout order, and the scratch buffers.
pub(crate) struct HostSlot<'a, E: Dtype, D: Device<E>> {
    pub step: &'a mut u64,
    pub buffers: Vec<&'a mut Raw<E, D>>,
    pub scratch: &'a mut GradAndValues<E, D>,
}

/// Reads a kind code (e.g. `group.momentum_kind`) as one of `0..count`.
pub(crate) fn kind_code(key: &str, value: f64, count: u8) -> Result<u8> {
    if value.fract() == 0.0 && value >= 0.0 && value < f64::from(count) {
        Ok(value as u8)
    } else {
        Err(state_error(format!(
            "group.{key} is {value}, but it must be a whole number below {count}"
        )))
    }
}

/// Checks a hyperparameter against PyTorch's constructor rule `low <= value` (and
/// `value < high` when given).
pub(crate) fn check_range(key: &str, value: f64, low: f64, high: Option<f64>) -> Result<()> {
    let ok = value >= low && high.is_none_or(|h| value < h);
    if ok {
        Ok(())
    } else {
        let upper = high.map_or(String::new(), |h| format!(" and below {h}"));
        Err(state_error(format!(
            "group.{key} is {value}, but it must be at least {low}{upper}"
        )))
    }
}

/// `group.weight_decay_kind` and `group.weight_decay` for a dfdx weight-decay setting:
/// kind 0 is none, 1 is L2 (added to the gradient), 2 is decoupled (AdamW-style).
pub(crate) fn encode_weight_decay(wd: Option<WeightDecay>) -> [f64; 2] {
    match wd {
        None => [0.0, 0.0],
        Some(WeightDecay::L2(x)) => [1.0, x],
        Some(WeightDecay::Decoupled(x)) => [2.0, x],
    }
}

/// The inverse of [`encode_weight_decay`], checked like PyTorch's `weight_decay >= 0`.
pub(crate) fn decode_weight_decay(kind: f64, value: f64) -> Result<Option<WeightDecay>> {
    check_range("weight_decay", value, 0.0, None)?;
    Ok(match kind_code("weight_decay_kind", kind, 3)? {
        0 => None,
        1 => Some(WeightDecay::L2(value)),
        _ => Some(WeightDecay::Decoupled(value)),
    })
}
