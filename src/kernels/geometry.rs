//! Runtime geometry of one convolution or pooling call, shared by every kernel.

/// Sizes of one `conv2d` call; all tensors are contiguous NCHW.
///
/// Input `(batch, in_channels, in_height, in_width)`, weight
/// `(out_channels, in_channels / groups, kernel, kernel)`, bias `(out_channels,)`,
/// output `(batch, out_channels, out_height, out_width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels (all groups together).
    pub in_channels: usize,
    /// Output channels (all groups together).
    pub out_channels: usize,
    /// Input height.
    pub in_height: usize,
    /// Input width.
    pub in_width: usize,
    /// Output height, `(in_height + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`.
    pub out_height: usize,
    /// Output width, same formula as the height.
    pub out_width: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups; both channel counts are multiples of it.
    pub groups: usize,
}

/// Sizes of one `max_pool2d` or `avg_pool2d` call; tensors are contiguous NCHW.
///
/// Input `(batch, channels, in_height, in_width)`, output
/// `(batch, channels, out_height, out_width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub in_height: usize,
    /// Input width.
    pub in_width: usize,
    /// Output height, `(in_height + 2 * padding - kernel) / stride + 1`.
    pub out_height: usize,
    /// Output width, same formula as the height.
    pub out_width: usize,
    /// Square window side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Implicit padding on each side (ignored by max, counted as zeros by average).
    pub padding: usize,
}

/// A square sliding window's geometry, shared by convolution and pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Square side, in taps.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Implicit padding on each side.
    pub padding: usize,
    /// Spacing between taps (1 for pooling).
    pub dilation: usize,
}

impl Conv2dGeometry {
    /// The convolution's window.
    pub fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

impl Pool2dGeometry {
    /// The pooling window (no dilation).
    pub fn window(&self) -> Window {
        Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: 1,
        }
    }
}
