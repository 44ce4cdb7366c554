//! A PNG of a training run from its [`IterationMetrics`]: reward (mean training reward, pass@n
//! and eval accuracies, the trained model's eval marked after the last iteration), response
//! length (mean, correct and incorrect) and reflection (ORZ's reflection-pattern matches per
//! response, and the share of responses with one) against the iteration, in three panels with a
//! title, axis labels and legends.
//!
//! Text is drawn with an embedded subset of DejaVu Sans (`examples/orz/assets/fonts`, Bitstream Vera
//! licence), so plots need no system font. The image is drawn in memory and encoded with the
//! `png` crate, so file errors are plain I/O errors that name the path.

use std::fs::File;
use std::io::BufWriter;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::metrics::{FinalEval, IterationMetrics};

/// The training curves' file name, in the output directory.
pub const PLOT_FILE: &str = "training.png";

/// Width and height of the plot in pixels.
pub const PLOT_SIZE: (u32, u32) = (1200, 1200);

/// The embedded font (a Latin-1 subset of DejaVu Sans).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";
/// Colours of the eval lines (orange, purple, green, brown, teal, magenta), in eval-name order.
const EVAL_COLORS: [RGBColor; 6] = [
    RGBColor(230, 120, 0),
    RGBColor(140, 60, 180),
    RGBColor(0, 150, 60),
    RGBColor(140, 90, 40),
    RGBColor(0, 150, 150),
    RGBColor(210, 0, 140),
];

fn register_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(anyhow!("the embedded font assets/fonts/DejaVuSans-subset.ttf is invalid")) }
}

/// One line of a panel: label, colour, points (non-finite values left out), marker size.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    marker: u32,
}

impl Line {
    fn new(
        label: &str,
        color: RGBColor,
        marker: u32,
        points: impl Iterator<Item = (f64, Option<f64>)>,
    ) -> Line {
        let points = points.filter_map(|(x, y)| y.filter(|y| y.is_finite()).map(|y| (x, y))).collect();
        Line { label: label.to_string(), color, points, marker }
    }
}

fn reward_lines(metrics: &[IterationMetrics], final_eval: Option<&FinalEval>) -> Vec<Line> {
    let x = |m: &IterationMetrics| m.iteration as f64;
    let mut lines = vec![
        Line::new(
            "mean training reward",
            BLUE,
            0,
            metrics.iter().map(|m| (x(m), Some(m.rollout.mean_reward))),
        ),
        Line::new(
            "pass@n (training)",
            RGBColor(120, 170, 230),
            0,
            metrics.iter().map(|m| (x(m), Some(m.rollout.pass_at_n))),
        ),
    ];
    let final_accuracy =
        |name: &String| final_eval.and_then(|f| Some((f.iteration as f64, *f.accuracy.get(name)?)));
    let mut names: Vec<&String> = metrics
        .iter()
        .flat_map(|m| m.eval.keys())
        .chain(final_eval.iter().flat_map(|f| f.accuracy.keys()))
        .collect();
    names.sort();
    names.dedup();
    for (i, name) in names.into_iter().enumerate() {
        let color = EVAL_COLORS[i % EVAL_COLORS.len()];
        let last = final_accuracy(name);
        let points = metrics.iter().map(|m| (x(m), m.eval.get(name).copied()));
        let points = points.chain(last.map(|(x, y)| (x, Some(y))));
        lines.push(Line::new(&format!("eval accuracy: {name}"), color, 4, points));
        if let Some((x, y)) = last {
            let label = format!("{name} after training: {y:.3}");
            lines.push(Line::new(&label, color, 9, std::iter::once((x, Some(y)))));
        }
    }
    lines
}

fn reflection_lines(metrics: &[IterationMetrics]) -> Vec<Line> {
    let x = |m: &IterationMetrics| m.iteration as f64;
    let per_response = |count: usize, m: &IterationMetrics| {
        (m.rollout.samples > 0).then(|| count as f64 / m.rollout.samples as f64)
    };
    vec![
        Line::new(
            "reflection words per response (wait, recheck, ...)",
            RGBColor(140, 60, 180),
            0,
            metrics.iter().map(|m| (x(m), per_response(m.rollout.reflection.total(), m))),
        ),
        Line::new(
            "share of responses with one",
            RGBColor(0, 150, 150),
            0,
            metrics.iter().map(|m| (x(m), per_response(m.rollout.reflection.responses_with_any, m))),
        ),
    ]
}

fn length_lines(metrics: &[IterationMetrics]) -> Vec<Line> {
    let x = |m: &IterationMetrics| m.iteration as f64;
    vec![
        Line::new(
            "mean response length",
            BLACK,
            0,
            metrics.iter().map(|m| (x(m), Some(m.rollout.response_length_mean))),
        ),
        Line::new(
            "correct responses",
            RGBColor(0, 150, 60),
            0,
            metrics.iter().map(|m| (x(m), m.rollout.correct_length_mean)),
        ),
        Line::new(
            "incorrect responses",
            RED,
            0,
            metrics.iter().map(|m| (x(m), m.rollout.incorrect_length_mean)),
        ),
    ]
}

/// `lo..hi` of the lines' values, widened to include `floor`, padded by 5% (not below a 0 floor).
fn y_range(lines: &[Line], floor: Range<f64>) -> Range<f64> {
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((floor.start, floor.end), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let lo_pad = if lo == 0.0 { 0.0 } else { pad };
    (lo - lo_pad)..(hi + pad)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x: Range<f64>,
    lines: &[Line],
    floor: Range<f64>,
    (caption, y_desc, y_decimals): (&str, &str, usize),
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing the {caption} panel: {e}");
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y_range(lines, floor))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    for line in lines.iter().filter(|l| !l.points.is_empty()) {
        let color = line.color;
        let series =
            LineSeries::new(line.points.iter().copied(), color.stroke_width(2)).point_size(line.marker);
        chart
            .draw_series(series)
            .map_err(|e| err(&e))?
            .label(line.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))
}

/// Draws the reward panel (mean training reward, pass@n, eval accuracy per eval file when
/// present, with `final_eval`, the trained model's, as a large dot after the last iteration)
/// over the response-length panel (mean, correct, incorrect) over the reflection panel
/// (reflection-pattern matches per response, share of responses with one), all against the
/// iteration, under `title`, and writes it as a [`PLOT_SIZE`] RGB PNG to `out`. Errors: no
/// metrics, or a file that cannot be written (naming `out`).
pub fn plot_training(
    metrics: &[IterationMetrics],
    final_eval: Option<&FinalEval>,
    out: &Path,
    title: &str,
) -> Result<()> {
    let (Some(first), Some(last)) =
        (metrics.iter().map(|m| m.iteration).min(), metrics.iter().map(|m| m.iteration).max())
    else {
        bail!("no metrics to plot into {}", out.display());
    };
    let last = final_eval.map_or(last, |f| last.max(f.iteration));
    register_embedded_font()?;
    let x = first as f64..(last.max(first + 1)) as f64;
    let (w, h) = PLOT_SIZE;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("drawing the plot background: {e}"))?;
        let root = root.titled(title, (FAMILY, 30)).map_err(|e| anyhow!("drawing the plot title: {e}"))?;
        let panels = root.split_evenly((3, 1));
        let rewards = reward_lines(metrics, final_eval);
        panel(&panels[0], x.clone(), &rewards, 0.0..1.0, ("Reward", "reward / accuracy", 1))?;
        panel(&panels[1], x.clone(), &length_lines(metrics), 0.0..1.0, ("Response length", "tokens", 0))?;
        let reflection = reflection_lines(metrics);
        panel(&panels[2], x, &reflection, 0.0..1.0, ("Reflection", "per response", 1))?;
        root.present().map_err(|e| anyhow!("finishing the plot: {e}"))?;
    }
    write_png(out, &pixels, PLOT_SIZE).with_context(|| format!("writing the plot {}", out.display()))
}

fn write_png(out: &Path, rgb: &[u8], (w, h): (u32, u32)) -> Result<()> {
    let file = File::create(out)?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A synthetic run: reward rising from 0.1 to about 0.7, lengths growing, eval every 10.
    fn synthetic(iterations: u64) -> Vec<IterationMetrics> {
        let base = crate::metrics::tests::simple(0, Some(1.0));
        (0..iterations)
            .map(|i| {
                let t = i as f64 / iterations as f64;
                let wiggle = 0.03 * ((i * 7 % 11) as f64 / 11.0 - 0.5);
                let mut m = base.clone();
                m.iteration = i;
                m.rollout.mean_reward = 0.1 + 0.6 * t + wiggle;
                m.rollout.pass_at_n = (0.4 + 0.55 * t + wiggle).min(1.0);
                m.rollout.response_length_mean = 200.0 + 2300.0 * t * t + 40.0 * wiggle;
                m.rollout.correct_length_mean = Some(m.rollout.response_length_mean * 0.9);
                m.rollout.incorrect_length_mean =
                    (i % 13 != 5).then_some(m.rollout.response_length_mean * 1.2);
                m.rollout.reflection.wait = (40.0 * t) as usize;
                m.rollout.reflection.responses_with_any = (16.0 * t) as usize;
                m.eval = if i % 10 == 0 {
                    BTreeMap::from([
                        ("math500".to_string(), 0.3 + 0.5 * t),
                        ("aime2024".to_string(), 0.02 + 0.15 * t),
                    ])
                } else {
                    BTreeMap::new()
                };
                m
            })
            .collect()
    }

    fn png_info(path: &Path) -> (u32, u32, png::ColorType, Vec<u8>) {
        let decoder = png::Decoder::new(File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, info.color_type, buf)
    }

    #[test]
    fn writes_a_png_of_the_expected_size() {
        let dir = std::env::temp_dir().join(format!("orz-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("training.png");
        let final_eval =
            FinalEval { iteration: 60, accuracy: BTreeMap::from([("math500".to_string(), 0.81)]) };
        plot_training(&synthetic(60), Some(&final_eval), &out, "orz tiny: synthetic run").unwrap();
        let (w, h, color, pixels) = png_info(&out);
        assert_eq!((w, h, color), (PLOT_SIZE.0, PLOT_SIZE.1, png::ColorType::Rgb));
        // Something was drawn: blue (training reward) and black (length, text) pixels exist.
        let px: Vec<&[u8]> = pixels.chunks(3).collect();
        assert!(px.iter().any(|p| p == &[0, 0, 255]), "no blue reward line");
        assert!(px.iter().filter(|p| p == &&[255, 255, 255]).count() < px.len() * 98 / 100);
        // A single iteration still plots (a non-empty x range).
        plot_training(&synthetic(1), None, &out, "one iteration").unwrap();
        if let Ok(keep) = std::env::var("ORZ_KEEP_PLOT") {
            plot_training(&synthetic(60), Some(&final_eval), Path::new(&keep), "orz tiny: synthetic run")
                .unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_final_eval_ends_its_eval_line_with_a_large_dot() {
        let metrics = synthetic(60);
        let final_eval =
            FinalEval { iteration: 60, accuracy: BTreeMap::from([("math500".to_string(), 0.81)]) };
        let lines = reward_lines(&metrics, Some(&final_eval));
        let eval = lines.iter().find(|l| l.label == "eval accuracy: math500").unwrap();
        assert_eq!(eval.points.len(), 7, "6 evals during training and the final one");
        assert_eq!(eval.points.last(), Some(&(60.0, 0.81)));
        let dot = lines.iter().find(|l| l.label == "math500 after training: 0.810").unwrap();
        assert_eq!((dot.points.as_slice(), dot.marker, dot.color), (&[(60.0, 0.81)][..], 9, eval.color));
        assert_eq!(reward_lines(&metrics, None).len(), 4, "training reward, pass@n, two evals");
        let reflection = reflection_lines(&metrics);
        assert_eq!(reflection[0].points.last(), Some(&(59.0, 39.0 / 16.0)));
    }

    #[test]
    fn errors_name_the_output_path() {
        let bad = std::env::temp_dir().join("orz-no-such-dir-for-plots").join("x.png");
        let err = format!("{:#}", plot_training(&synthetic(3), None, &bad, "t").unwrap_err());
        assert!(err.contains(&bad.display().to_string()), "{err}");
        let err = format!("{:#}", plot_training(&[], None, Path::new("empty.png"), "t").unwrap_err());
        assert!(err.contains("no metrics") && err.contains("empty.png"), "{err}");
    }
}
