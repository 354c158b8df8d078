package main

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writeChart draws four panels from the medians: keep-alive GET time and
// allocations, handshake time, and upload allocation. It writes SVG, or PNG
// when path ends in .png.
func writeChart(path string, d *results) error {
	panels := [][]*plot.Plot{
		{
			grouped(d, benchGet, "ns/op", limit, "Keep-alive GET: time/op ÷ bare net/http", "× bare", chartCaseLabel),
			grouped(d, benchGet, "allocs/op", "", "Keep-alive GET: allocs/op", "allocs/op", chartCaseLabel),
		},
		{
			grouped(d, benchHS, "ns/op", limit, "New-connection handshake: time/op ÷ bare net/http", "× bare",
				func(c string) string { return strings.TrimPrefix(c, "handshake=") }),
			uploadPlot(d),
		},
	}
	const w, h = 13 * vg.Inch, 8 * vg.Inch
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if strings.HasSuffix(path, ".png") {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	} else {
		c = vgsvg.New(w, h)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Inch / 3, PadY: vg.Inch / 3,
		PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		for j := range panels[i] {
			panels[i][j].Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// grouped is a bar chart with one group per case and one bar per client, of
// the median of unit, divided by the base client's when base is set (with a
// line at 1).
func grouped(d *results, bench, unit, base, title, ylabel string, label func(string) string) *plot.Plot {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s (median of %d runs)", title, d.runs(bench))
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	cases, clients := d.cases[bench], d.clients[bench]
	if len(cases) == 0 {
		p.Title.Text += " (not measured)"
		return p
	}
	width := vg.Points(70 / float64(len(clients)))
	for i, cl := range clients {
		vals := make(plotter.Values, len(cases))
		for j, cas := range cases {
			v, _ := d.median(bench, cas, cl, unit)
			if base != "" {
				if b, ok := d.median(bench, cas, base, unit); ok && b != 0 {
					v /= b
				}
			}
			vals[j] = v
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			panic(err) // only for NaN or infinite values, which medians are not
		}
		bars.Color = clientColor(cl, i)
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(clients)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(cl, bars)
	}
	if base != "" {
		one := plotter.NewFunction(func(float64) float64 { return 1 })
		one.Color = color.Gray{Y: 80}
		one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(one)
		p.Y.Min = 0
	}
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = label(c)
	}
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	p.Y.Max *= 1.6 // room for the legend above the bars
	return p
}

// uploadPlot shows MiB allocated per 128 MiB upload, per client, labelled
// with the values since they differ by three orders of magnitude.
func uploadPlot(d *results) *plot.Plot {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("128 MiB streaming upload: MiB allocated per upload (median of %d runs)", d.runs(benchUpload))
	p.Y.Label.Text = "MiB/op"
	cases, clients := d.cases[benchUpload], d.clients[benchUpload]
	if len(cases) == 0 {
		p.Title.Text += " (not measured)"
		return p
	}
	cas := cases[0]
	var labels plotter.XYLabels
	for i, cl := range clients {
		v, _ := d.median(benchUpload, cas, cl, "B/op")
		v /= mib
		bars, err := plotter.NewBarChart(plotter.Values{v}, vg.Points(40))
		if err != nil {
			panic(err)
		}
		bars.Color = clientColor(cl, i)
		bars.LineStyle.Width = 0
		bars.XMin = float64(i)
		p.Add(bars)
		labels.XYs = append(labels.XYs, plotter.XY{X: float64(i), Y: v})
		labels.Labels = append(labels.Labels, fmt.Sprintf("%.2f", v))
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign = draw.XCenter
			l.TextStyle[i].YAlign = draw.YBottom
		}
		p.Add(l)
	}
	p.NominalX(clients...)
	p.Add(plotter.NewGrid())
	p.Y.Min = 0
	p.Y.Max *= 1.15
	return p
}

// clientColor keeps each client's colour the same in every panel.
func clientColor(cl string, i int) color.Color {
	switch cl {
	case limit:
		return color.RGBA{R: 150, G: 150, B: 150, A: 255}
	case "oauth2":
		return plotutil.Color(2)
	case "retryablehttp":
		return plotutil.Color(3)
	case "resty":
		return plotutil.Color(4)
	case noPins:
		return color.RGBA{R: 120, G: 170, B: 230, A: 255}
	case secure:
		return color.RGBA{R: 20, G: 80, B: 180, A: 255}
	}
	return plotutil.Color(i)
}

// chartCaseLabel is getCaseLabel on two lines, to fit under a group of bars.
func chartCaseLabel(cas string) string {
	return strings.Replace(getCaseLabel(cas), ", ", "\n", 1)
}
