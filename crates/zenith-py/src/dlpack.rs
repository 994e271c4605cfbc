//! Tensor columns handed over as DLPack capsules: the `"dltensor"` capsule of the DLPack
//! protocol (v0.8 ABI, what `torch.from_dlpack` and every array library take), owning the
//! batch's buffer. zenith.torch makes its tensors from these: one call per column, where a NumPy
//! array first and `torch.from_numpy` on it cost two objects and two calls per column.

use std::ffi::{c_void, CStr};

use pyo3::ffi;
use pyo3::prelude::*;
use zenith_core::{DType, TensorData};

/// `DLDevice`: where the data lives (always the CPU here).
#[repr(C)]
struct DlDevice {
    device_type: i32,
    device_id: i32,
}

/// `DLDataType`: type code, bits per lane, lanes.
#[repr(C)]
struct DlDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}

/// `DLTensor`: a view of a strided buffer (strides NULL: compact row-major).
#[repr(C)]
struct DlTensor {
    data: *mut c_void,
    device: DlDevice,
    ndim: i32,
    dtype: DlDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}

/// `DLManagedTensor`: the tensor, its owner, and the function that frees both.
#[repr(C)]
struct DlManagedTensor {
    dl_tensor: DlTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DlManagedTensor)>,
}

/// What a capsule owns: the managed tensor (first, so a pointer to it is a pointer to the
/// owner), the shape it points into and the buffer.
#[repr(C)]
struct Owner {
    managed: DlManagedTensor,
    shape: Vec<i64>,
    data: TensorData,
}

const CPU: i32 = 1;
const CAPSULE_NAME: &CStr = c"dltensor";

/// DLPack's type of a tensor's elements: the kind's code and the element's width in bits.
fn dtype_of(data: &TensorData) -> DlDataType {
    let dtype = data.dtype();
    let code = match dtype {
        DType::Bool => 6,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => 0,
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => 1,
        DType::F32 | DType::F64 => 2,
    };
    DlDataType {
        code,
        bits: (dtype.size() * 8) as u8,
        lanes: 1,
    }
}

/// Frees an owner: called by the consumer once its tensor is gone, or by the capsule when
/// nobody consumed it.
unsafe extern "C" fn delete_owner(managed: *mut DlManagedTensor) {
    if !managed.is_null() {
        // SAFETY: every DlManagedTensor handed out is the first field of a boxed `Owner`
        // (repr(C)), and the protocol calls the deleter exactly once.
        drop(unsafe { Box::from_raw(managed.cast::<Owner>()) });
    }
}

/// The capsule's destructor: frees the tensor unless a consumer took it (a consumer renames
/// the capsule to `"used_dltensor"` and calls the deleter itself).
unsafe extern "C" fn destroy_capsule(capsule: *mut ffi::PyObject) {
    // SAFETY: `capsule` is the capsule being destroyed; both calls only read it and set no
    // Python error when the name differs.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, CAPSULE_NAME.as_ptr()) == 1 {
            let managed = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr());
            delete_owner(managed.cast::<DlManagedTensor>());
        }
    }
}

/// A `"dltensor"` capsule owning `data` with `shape` (row-major).
pub(crate) fn capsule<'py>(
    py: Python<'py>,
    data: TensorData,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let dtype = dtype_of(&data);
    let mut owner = Box::new(Owner {
        managed: DlManagedTensor {
            dl_tensor: DlTensor {
                data: std::ptr::null_mut(),
                device: DlDevice {
                    device_type: CPU,
                    device_id: 0,
                },
                ndim: shape.len() as i32,
                dtype,
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                byte_offset: 0,
            },
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(delete_owner),
        },
        shape,
        data,
    });
    // The pointers are taken after boxing: the Vec buffers do not move with the box.
    owner.managed.dl_tensor.data =
        zenith_core::with_tensor_data!(&mut owner.data, v => v.as_mut_ptr().cast::<c_void>());
    owner.managed.dl_tensor.shape = owner.shape.as_mut_ptr();
    let raw = Box::into_raw(owner);
    // SAFETY: `raw` is a valid owner whose first field is the managed tensor; on success the
    // capsule owns it (freed by `destroy_capsule` or by the consumer through the deleter).
    let capsule = unsafe {
        ffi::PyCapsule_New(
            raw.cast::<c_void>(),
            CAPSULE_NAME.as_ptr(),
            Some(destroy_capsule),
        )
    };
    if capsule.is_null() {
        // SAFETY: the capsule was not made, so `raw` is still ours alone.
        unsafe { delete_owner(raw.cast::<DlManagedTensor>()) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `capsule` is a new, owned reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}
