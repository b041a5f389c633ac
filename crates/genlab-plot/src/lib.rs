//! genlab-plot: figures as PNG files: line plots (loss curves, monitors), a scatter by class (a
//! 2-D latent space), density heat maps beside point clouds (a 2-D density model against its
//! exact density). Drawn with plotters, with DejaVu Sans vendored so no system font library is
//! needed; every file is written to a temporary sibling and renamed into place.

use genlab_data::ToyPoints;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The vendored font is a valid TrueType file; failing to parse it is a build defect.
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("vendored DejaVuSans.ttf should parse"));
    });
}

/// A figure that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw plot: {reason}")]
pub struct PlotError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

pub type Result<T, E = PlotError> = std::result::Result<T, E>;

fn plot_err(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |reason| PlotError { path: path.to_path_buf(), reason }
}

/// Draws into a temporary PNG beside `path`, then renames it into place.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let tmp = genlab_core::atomic::temp_sibling(path).with_extension("png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path)(e.to_string()))?;
        draw(&root).map_err(plot_err(path))?;
        root.present().map_err(|e| plot_err(path)(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| plot_err(path)(e.to_string()))
}

/// One named series of (step, value).
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// Decimals that tell apart the ~10 ticks of an axis spanning `span`.
fn tick_decimals(span: f64) -> usize {
    if !(span > 0.0) {
        return 1;
    }
    (-(span / 10.0).log10().floor()).clamp(0.0, 8.0) as usize
}

/// Line plot of one or more series against the step.
pub fn line_plot(path: &Path, title: &str, y_label: &str, series: &[Series<'_>]) -> Result<()> {
    line_plot_against(path, title, "step", y_label, series)
}

/// Line plot of one or more series against `x_label`'s quantity (a histogram's bin centres).
pub fn line_plot_against(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> Result<()> {
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|p| p.1.is_finite()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let (x0, x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    // Clip the y range to the 2nd-98th percentile span so the first steps do not flatten the curve.
    let mut ys: Vec<f64> = all.iter().map(|p| p.1).collect();
    ys.sort_by(f64::total_cmp);
    let (lo, hi) = (ys[ys.len() / 50], ys[ys.len() - 1 - ys.len() / 50]);
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let (y0, y1) = (lo - pad, hi + pad);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let decimals = tick_decimals(y1 - y0);
    draw_png(path, (900, 520), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.decimals$}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.1 >= y0 && p.1 <= y1).collect();
            let style = ShapeStyle::from(&color).stroke_width(2);
            let drawn = chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(|e| e.to_string())?;
            // A series without a name is drawn but left out of the legend.
            if !s.name.is_empty() {
                drawn.label(s.name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
            if pts.len() <= 30 {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// Scatter of 2-D points coloured by class, with a legend of class names.
pub fn scatter_by_class(path: &Path, title: &str, points: &[(f32, f32, u32)], class_names: &[String]) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y, _) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let (px, py) = ((x1 - x0) * 0.05 + 1e-3, (y1 - y0) * 0.05 + 1e-3);
    draw_png(path, (760, 700), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("z[0]").y_desc("z[1]").draw().map_err(|e| e.to_string())?;
        let classes = class_names.len().max(1);
        for c in 0..classes {
            let color = Palette99::pick(c).to_rgba();
            let pts = points
                .iter()
                .filter(|p| p.2 as usize == c)
                .map(|&(x, y, _)| Circle::new((x, y), 2, color.mix(0.6).filled()));
            let name = class_names.get(c).cloned().unwrap_or_default();
            chart
                .draw_series(pts)
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// One panel of [`density_panels`].
pub enum DensityPanel<'a> {
    /// A density on a `k x k` grid over the window, row-major from the bottom row up
    /// (`values[iy * k + ix]`), drawn as a heat map scaled to its own maximum.
    Heat { title: &'a str, k: usize, values: &'a [f64] },
    /// Points `[x0, y0, x1, y1, ...]`.
    Points { title: &'a str, points: &'a [f32] },
}

/// Viridis at `t` in [0, 1], interpolated between 6 of its stops.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 6] =
        [(68, 1, 84), (65, 68, 135), (42, 120, 142), (34, 168, 132), (122, 209, 81), (253, 231, 37)];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Panels side by side over the square window `[lo, hi]^2`: heat maps of densities and scatters
/// of points, each with its title.
pub fn density_panels(path: &Path, title: &str, (lo, hi): (f64, f64), panels: &[DensityPanel<'_>]) -> Result<()> {
    let side = 420u32;
    draw_png(path, (side * panels.len() as u32, side + 50), |root| {
        let (head, body) = root.split_vertically(50);
        head.titled(title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
        for (panel, area) in panels.iter().zip(body.split_evenly((1, panels.len()))) {
            let name = match panel {
                DensityPanel::Heat { title, .. } | DensityPanel::Points { title, .. } => *title,
            };
            let mut chart = ChartBuilder::on(&area)
                .caption(name, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(30)
                .build_cartesian_2d(lo..hi, lo..hi)
                .map_err(|e| e.to_string())?;
            chart.configure_mesh().disable_mesh().label_style(("sans-serif", 11)).draw().map_err(|e| e.to_string())?;
            match panel {
                DensityPanel::Heat { k, values, .. } => {
                    let max = values.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max).max(1e-300);
                    let cell = (hi - lo) / *k as f64;
                    chart
                        .draw_series((0..k * k).map(|i| {
                            let (ix, iy) = (i % k, i / k);
                            let (x, y) = (lo + ix as f64 * cell, lo + iy as f64 * cell);
                            Rectangle::new([(x, y), (x + cell, y + cell)], viridis(values[i] / max).filled())
                        }))
                        .map_err(|e| e.to_string())?;
                }
                DensityPanel::Points { points, .. } => {
                    let color = RGBColor(31, 119, 180).mix(0.35).filled();
                    chart
                        .draw_series(
                            points
                                .chunks(2)
                                .map(|p| (p[0] as f64, p[1] as f64))
                                .filter(|p| p.0 > lo && p.0 < hi && p.1 > lo && p.1 < hi)
                                .map(|p| Circle::new(p, 1, color)),
                        )
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}

/// The figure of a 2-D density model: the exact density and the model's (`model_log_density`
/// of chunks of grid points `[x0, y0, ...]`) as heat maps, test points, and the model's samples.
pub fn density_figure(
    points: &ToyPoints,
    path: &std::path::Path,
    title: &str,
    samples: &[f32],
    mut model_log_density: impl FnMut(&[f32]) -> Vec<f32>,
) -> Result<()> {
    let k = 160;
    let (lo, hi) = points.toy.window();
    let cell = (hi - lo) / k as f64;
    let grid: Vec<f32> = (0..k * k)
        .flat_map(|i| [(lo + ((i % k) as f64 + 0.5) * cell) as f32, (lo + ((i / k) as f64 + 0.5) * cell) as f32])
        .collect();
    let mut model = Vec::with_capacity(k * k);
    for chunk in grid.chunks(2 * 4000) {
        model.extend(model_log_density(chunk).into_iter().map(|l| (l as f64).exp()));
    }
    let exact: Vec<f64> = grid.chunks(2).map(|p| points.toy.log_density(p[0] as f64, p[1] as f64).exp()).collect();
    let shown = &points.test[..2 * 5000.min(points.test.len() / 2)];
    density_panels(
        path,
        title,
        (lo, hi),
        &[
            DensityPanel::Heat { title: "exact density", k, values: &exact },
            DensityPanel::Heat { title: "model density", k, values: &model },
            DensityPanel::Points { title: "test points", points: shown },
            DensityPanel::Points { title: "model samples", points: samples },
        ],
    )
}

/// One axis of [`parallel_coordinates`]: its name and the labels of its low and high ends.
pub struct Axis<'a> {
    pub name: &'a str,
    pub low: String,
    pub high: String,
}

/// Parallel coordinates: one polyline per trial across the parameter axes (each value scaled to
/// [0, 1] on its axis), coloured from the best objective (dark blue) to the worst (yellow); the
/// last axis is the objective itself.
pub fn parallel_coordinates(path: &Path, title: &str, axes: &[Axis<'_>], lines: &[(Vec<f64>, f64)]) -> Result<()> {
    if axes.is_empty() || lines.is_empty() {
        return Ok(());
    }
    let n = axes.len();
    let width = (160 * n as u32).clamp(640, 1600);
    draw_png(path, (width, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(24)
            .x_label_area_size(56)
            .y_label_area_size(10)
            .build_cartesian_2d(-0.1..(n as f64 - 0.7), -0.08..1.08)
            .map_err(|e| e.to_string())?;
        for i in 0..n {
            let x = i as f64;
            chart
                .draw_series(LineSeries::new(vec![(x, 0.0), (x, 1.0)], BLACK.stroke_width(1)))
                .map_err(|e| e.to_string())?;
        }
        for (pts, rank) in lines {
            // rank in [0, 1]: 0 the best.
            let t = rank.clamp(0.0, 1.0);
            let color = RGBColor((30.0 + 220.0 * t) as u8, (40.0 + 180.0 * t) as u8, (140.0 - 110.0 * t) as u8);
            let poly: Vec<(f64, f64)> = pts.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect();
            chart.draw_series(LineSeries::new(poly, color.mix(0.75).stroke_width(2))).map_err(|e| e.to_string())?;
        }
        let font = ("sans-serif", 14).into_font();
        for (i, a) in axes.iter().enumerate() {
            let x = i as f64;
            for (y, s) in [(1.06, a.high.as_str()), (-0.02, a.low.as_str()), (-0.065, a.name)] {
                chart
                    .draw_series(std::iter::once(Text::new(s.to_string(), (x, y), font.clone())))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_keep_enough_decimals_to_differ() {
        // A cross-entropy curve between 0 and 0.45 (ticks 0.05 apart) needs 2 decimals; a VAE loss
        // over 90..600 needs none beyond the one kept.
        assert_eq!(tick_decimals(0.45), 2);
        assert_eq!(tick_decimals(510.0), 0);
        assert_eq!(tick_decimals(5.0), 1);
        assert_eq!(tick_decimals(0.0), 1);
        assert_eq!(tick_decimals(f64::NAN), 1);
    }

    #[test]
    fn plots_are_png_files_with_ink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("loss.png");
        let s = Series { name: "train", points: (1..200).map(|i| (i as f64, 500.0 / i as f64 + 90.0)).collect() };
        line_plot(&p, "loss", "nats", &[s]).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (900, 520));
        let dark = img.pixels().filter(|px| px.0.iter().all(|&c| c < 100)).count();
        assert!(dark > 500, "axes and text should be drawn ({dark} dark pixels)");
        let q = d.path().join("latent.png");
        let pts: Vec<(f32, f32, u32)> = (0..300).map(|i| ((i as f32).sin(), (i as f32 * 0.7).cos(), i % 3)).collect();
        scatter_by_class(&q, "latent", &pts, &["a".into(), "b".into(), "c".into()]).unwrap();
        assert!(image::open(&q).is_ok());
    }
}
