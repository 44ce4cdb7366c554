//! The registry's tests: names, devices, messages, and that every compiled-in entry opens.

use super::*;
use orz_core::backend::DType;

/// Sums a small tensor on the backend it is handed, and says where it ran.
struct Sum;

impl BackendVisitor for Sum {
    type Output = orz_core::Result<(String, f64)>;
    fn visit<B: Backend + 'static>(self, b: B, opened: Opened) -> Self::Output {
        let t = b.tensor_f64(&[1.0, 2.0], &[2], DType::F32)?;
        Ok((opened.to_string(), b.to_host_f64(&t)?.iter().sum()))
    }
}

#[test]
fn every_name_parses_back_to_its_kind() {
    for &kind in BackendKind::ALL {
        assert_eq!(kind.name().parse::<BackendKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.name());
    }
    assert_eq!(BackendKind::ALL.len(), 4);
    assert_eq!(BackendKind::choices(), "reference, candle, tch or plain");
}

#[test]
fn unknown_names_and_devices_list_the_choices() {
    let e = "jax".parse::<BackendKind>().unwrap_err();
    assert_eq!(e, Error::UnknownBackend("jax".into()));
    assert_eq!(e.to_string(), "unknown backend `jax`: expected reference, candle, tch or plain");
    let e = "gpu".parse::<DeviceSpec>().unwrap_err().to_string();
    assert_eq!(e, "unknown device `gpu`: expected cpu, cuda or cuda:N");
    assert!("cuda:x".parse::<DeviceSpec>().is_err());
}

#[test]
fn devices_parse_and_print() {
    assert_eq!("cpu".parse::<DeviceSpec>(), Ok(DeviceSpec::Cpu));
    assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
    assert_eq!("cuda:3".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(3)));
    assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    assert_eq!(DeviceSpec::Cuda(1).cuda_ordinal(), Some(1));
    assert_eq!(DeviceSpec::Cpu.cuda_ordinal(), None);
}

#[test]
fn labels_and_display_name_backend_and_device() {
    let at = |kind, device| Opened { kind, device };
    assert_eq!(at(BackendKind::Reference, DeviceSpec::Cpu).label(), "reference");
    assert_eq!(at(BackendKind::Candle, DeviceSpec::Cpu).label(), "candle-cpu");
    assert_eq!(at(BackendKind::Tch, DeviceSpec::Cuda(0)).label(), "tch-cuda");
    assert_eq!(at(BackendKind::Tch, DeviceSpec::Cuda(2)).to_string(), "tch/cuda:2");
    assert_eq!(at(BackendKind::Candle, DeviceSpec::Cpu).to_string(), "candle/cpu");
}

#[test]
fn features_follow_the_build() {
    assert!(BackendKind::Reference.is_compiled());
    assert_eq!(BackendKind::Reference.entry().feature, None);
    assert_eq!(BackendKind::Candle.entry().feature, Some("candle"));
    assert_eq!(BackendKind::Tch.entry().feature, Some("tch"));
    assert_eq!(BackendKind::Plain.entry().feature, Some("plain"));
    assert_eq!(BackendKind::Plain.is_compiled(), cfg!(feature = "plain"));
    assert!(!BackendKind::Plain.runs_on(DeviceSpec::Cuda(0)));
    assert_eq!(BackendKind::Candle.is_compiled(), cfg!(feature = "candle"));
    assert_eq!(BackendKind::Tch.is_compiled(), cfg!(feature = "tch"));
    assert_eq!(BackendKind::Candle.runs_on(DeviceSpec::Cuda(0)), cfg!(feature = "candle-cuda"));
    assert_eq!(BackendKind::Tch.runs_on(DeviceSpec::Cuda(0)), cfg!(feature = "tch"));
    assert!(!BackendKind::Reference.runs_on(DeviceSpec::Cuda(0)));
    let compiled: Vec<BackendKind> = BackendKind::compiled().collect();
    assert_eq!(compiled[0], BackendKind::Reference);
    assert_eq!(
        compiled.len(),
        1 + usize::from(cfg!(feature = "candle"))
            + usize::from(cfg!(feature = "tch"))
            + usize::from(cfg!(feature = "plain"))
    );
}

#[test]
fn every_compiled_backend_opens_on_the_cpu() {
    let on_cpu = compiled_on(&[DeviceSpec::Cpu]);
    assert_eq!(on_cpu.len(), BackendKind::compiled().count());
    for opened in on_cpu {
        let (name, sum) = with_backend(opened.kind, opened.device, Sum).unwrap().unwrap();
        assert_eq!((name, sum), (format!("{}/cpu", opened.kind.name()), 3.0));
    }
}

#[test]
fn missing_backends_and_devices_say_how_to_build() {
    let e = with_backend(BackendKind::Reference, DeviceSpec::Cuda(0), Sum).unwrap_err();
    assert_eq!(e.to_string(), "backend `reference` runs on the CPU only, not on cuda:0");
    if !cfg!(feature = "tch") {
        let e = with_backend(BackendKind::Tch, DeviceSpec::Cpu, Sum).unwrap_err();
        assert_eq!(e, Error::NotCompiled(BackendKind::Tch));
        let e = e.to_string();
        assert!(e.contains("`--features tch`") && e.contains("setup-libtorch.sh"), "{e}");
    }
    if !cfg!(feature = "candle") {
        let e = with_backend(BackendKind::Candle, DeviceSpec::Cpu, Sum).unwrap_err().to_string();
        assert_eq!(e, "backend `candle` is not compiled in: build with `--features candle`");
    }
    if cfg!(feature = "candle") && !cfg!(feature = "candle-cuda") {
        let e = with_backend(BackendKind::Candle, DeviceSpec::Cuda(1), Sum).unwrap_err().to_string();
        assert!(
            e.starts_with("backend `candle` on cuda:1 needs a build with CUDA: `--features candle-cuda`"),
            "{e}"
        );
    }
}

#[test]
fn an_absent_cuda_device_is_an_error_naming_it() {
    // No machine has 1000 GPUs: tch (when compiled in) must fail to open, never panic.
    if cfg!(feature = "tch") {
        match with_backend(BackendKind::Tch, DeviceSpec::Cuda(1000), Sum) {
            Err(Error::Open { kind: BackendKind::Tch, device: DeviceSpec::Cuda(1000), message }) => {
                assert!(!message.is_empty());
            }
            other => panic!("expected an open error, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn memory_facts_are_the_planners() {
    assert_eq!(BackendKind::Reference.memory().attention, AttentionKernel::Dense);
    assert_eq!(BackendKind::Reference.memory().element_bytes, Some(8));
    assert_eq!(BackendKind::Candle.memory().attention, AttentionKernel::Fused);
    assert!(BackendKind::Candle.memory().keeps_node_grads);
    assert!(!BackendKind::Tch.memory().keeps_node_grads);
    // candle's fused head runs on the CPU in f32 only; elsewhere the composition's buffers.
    let candle = BackendKind::Candle.memory();
    assert_eq!(BackendKind::Candle.memory_on(DeviceSpec::Cpu, DType::F32).head_buffers, (2, 0));
    for (device, dtype) in [(DeviceSpec::Cpu, DType::BF16), (DeviceSpec::Cuda(0), DType::F32)] {
        assert_eq!(BackendKind::Candle.memory_on(device, dtype), candle, "{device} {dtype:?}");
    }
    assert_eq!(BackendKind::Tch.memory_on(DeviceSpec::Cpu, DType::F32), BackendKind::Tch.memory());
    assert!(BackendKind::ALL.iter().filter(|k| k.entry().oracle).eq([&BackendKind::Reference]));
}
