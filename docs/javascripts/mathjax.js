window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" },
};
// Without network (no MathJax from the CDN) the formulas stay as TeX source.
document$.subscribe(() => { if (window.MathJax.typesetPromise) { MathJax.typesetPromise(); } });
