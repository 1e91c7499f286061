//! The example tasks end to end: which data, which float model, how it is trained, how its
//! inputs are encoded for the integer model, and the fixed train/test split.

use std::path::Path;

use fixpoint_ml::format::Model;
use fixpoint_ml::{Engine, Tensor};

use crate::data::{Dataset, data_dir, load_cancer, load_digits};
use crate::error::{Error, Result};
use crate::eval::Report;
use crate::gbdt::{Gbdt, GbdtParams};
use crate::lower::{calibrate, lower_gbdt, lower_net, tree_feature};
use crate::net::{Layer, Net, read_weights};

/// Seed of the train/test split every command uses.
pub const SPLIT_SEED: u64 = 2026;
/// Share of rows held out for testing, in percent.
pub const TEST_PERCENT: usize = 20;

/// An example task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// UCI digits, MLP 64 → 128 → 64 → 10.
    DigitsMlp,
    /// UCI digits, CNN: two 3×3 conv + 2×2 max-pool blocks, then dense → 10.
    DigitsCnn,
    /// Wisconsin breast cancer, 60 boosted trees of depth 3.
    CancerGbdt,
}

impl Task {
    /// Every task.
    pub const ALL: [Task; 3] = [Task::DigitsMlp, Task::DigitsCnn, Task::CancerGbdt];

    /// The task's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Task::DigitsMlp => "digits-mlp",
            Task::DigitsCnn => "digits-cnn",
            Task::CancerGbdt => "cancer-gbdt",
        }
    }

    /// The task named `s`.
    pub fn from_name(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
            Error::Weights(format!("unknown task {s:?}; tasks are {}", names.join(", ")))
        })
    }

    /// One line on what the task is.
    pub fn describe(self) -> &'static str {
        match self {
            Task::DigitsMlp => "8x8 digit images (UCI), MLP 64-128-64-10",
            Task::DigitsCnn => "8x8 digit images (UCI), CNN conv16-pool-conv32-pool-dense10",
            Task::CancerGbdt => "breast cancer diagnosis (UCI WDBC), 60 boosted trees of depth 3",
        }
    }

    /// The whole data set.
    pub fn dataset(self) -> Result<Dataset> {
        match self {
            Task::DigitsMlp | Task::DigitsCnn => load_digits(&data_dir().join("digits.csv.gz")),
            Task::CancerGbdt => load_cancer(&data_dir().join("breast_cancer.csv")),
        }
    }

    /// The fixed `(train, test)` split.
    pub fn split(self) -> Result<(Dataset, Dataset)> {
        Ok(self.dataset()?.split(TEST_PERCENT, SPLIT_SEED))
    }

    /// A freshly initialised network for a network task.
    pub fn new_net(self, seed: u64) -> Result<Net> {
        let dense = |inp, out, relu| Layer::Dense { inp, out, relu };
        let conv = |in_c, out_c| Layer::Conv { in_c, out_c, k: 3, pad: 1, stride: 1, groups: 1, relu: true };
        match self {
            Task::DigitsMlp => Net::new(
                vec![64],
                1.0 / 16.0,
                vec![dense(64, 128, true), dense(128, 64, true), dense(64, 10, false)],
                seed,
            ),
            Task::DigitsCnn => Net::new(
                vec![1, 8, 8],
                1.0 / 16.0,
                vec![
                    conv(1, 16),
                    Layer::MaxPool { k: 2, stride: 2 },
                    conv(16, 32),
                    Layer::MaxPool { k: 2, stride: 2 },
                    Layer::Flatten,
                    dense(128, 10, false),
                ],
                seed,
            ),
            Task::CancerGbdt => Err(Error::Weights("cancer-gbdt is a tree ensemble, not a network".into())),
        }
    }

    /// Default training length: epochs for networks, trees for the ensemble.
    pub fn default_rounds(self) -> usize {
        match self {
            Task::DigitsMlp => 40,
            Task::DigitsCnn => 30,
            Task::CancerGbdt => GbdtParams::default().trees,
        }
    }

    /// Trains the task's float model for `rounds` epochs (or trees); `progress(round, loss)`.
    pub fn train(
        self,
        train: &Dataset,
        rounds: usize,
        seed: u64,
        mut progress: impl FnMut(usize, Option<f32>),
    ) -> Result<FloatModel> {
        match self {
            Task::CancerGbdt => {
                let p = GbdtParams { trees: rounds, ..Default::default() };
                Ok(FloatModel::Trees(Gbdt::train(train, p, |t| progress(t, None))?))
            }
            _ => {
                let net = self.new_net(seed)?;
                let lr = if self == Task::DigitsCnn { 3e-3 } else { 2e-3 };
                net.train(train, rounds, lr, seed, |e, l| progress(e, Some(l)))?;
                Ok(FloatModel::Net(net))
            }
        }
    }

    /// One row of raw features as the integer model's input.
    pub fn encode(self, row: &[f32]) -> Result<Tensor> {
        match self {
            Task::DigitsMlp | Task::DigitsCnn => {
                let px: Vec<i8> = row.iter().map(|&v| v.clamp(-128.0, 127.0).round() as i8).collect();
                let shape = if self == Task::DigitsCnn { vec![8, 8, 1] } else { vec![64] };
                Ok(Tensor::i8(shape, px)?)
            }
            Task::CancerGbdt => {
                let f = row.iter().map(|&v| tree_feature(v)).collect::<Result<Vec<_>>>()?;
                Ok(Tensor::i32(vec![f.len()], f)?)
            }
        }
    }

    /// The integer model's predicted class for every row of `ds`.
    pub fn int_predict(self, engine: &Engine, ds: &Dataset) -> Result<Vec<u32>> {
        (0..ds.len())
            .map(|i| {
                let out = engine.run(vec![self.encode(ds.row(i))?])?;
                let label = out.first().and_then(|t| t.as_i32()).and_then(|v| v.first()).copied();
                label
                    .and_then(|l| u32::try_from(l).ok())
                    .ok_or_else(|| Error::Quantize("model has no label output".into()))
            })
            .collect()
    }
}

/// A trained float model of one of the tasks.
#[derive(Debug)]
pub enum FloatModel {
    /// A candle network.
    Net(Net),
    /// A boosted tree ensemble.
    Trees(Gbdt),
}

impl FloatModel {
    /// Reads a weights file written by `save`; the task comes from its metadata unless given.
    pub fn load(path: &Path, task: Option<Task>) -> Result<(Task, Self)> {
        let (tensors, named) = read_weights(path)?;
        let task = match (task, named) {
            (Some(t), _) => t,
            (None, Some(n)) => Task::from_name(&n)?,
            (None, None) => return Err(Error::Weights(format!("{} names no task; pass --task", path.display()))),
        };
        let model = match task {
            Task::CancerGbdt => FloatModel::Trees(Gbdt::from_tensors(&tensors)?),
            _ => {
                let mut net = task.new_net(0)?;
                net.load_params(&tensors)?;
                FloatModel::Net(net)
            }
        };
        Ok((task, model))
    }

    /// Writes the model as safetensors, naming `task` in the metadata.
    pub fn save(&self, path: &Path, task: Task) -> Result<()> {
        match self {
            FloatModel::Net(n) => n.save(path, task.name()),
            FloatModel::Trees(t) => t.save(path, task.name()),
        }
    }

    /// Predicted classes for every row.
    pub fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        match self {
            FloatModel::Net(n) => n.predict(ds),
            FloatModel::Trees(t) => Ok(t.predict(ds)),
        }
    }

    /// The canonical integer model, calibrated on `calib` (networks); `progress(rows_done)`.
    pub fn quantize(&self, calib: &Dataset, progress: impl FnMut(usize)) -> Result<Model> {
        match self {
            FloatModel::Net(n) => lower_net(n, &calibrate(n, calib, progress)?),
            FloatModel::Trees(t) => lower_gbdt(t),
        }
    }
}

/// Float vs integer on `test`.
pub fn evaluate(task: Task, float: &FloatModel, engine: &Engine, test: &Dataset) -> Result<Report> {
    Ok(Report::new(&float.predict(test)?, &task.int_predict(engine, test)?, &test.labels))
}
