/** The viewer's styles, injected once per mount (the component is not style-isolated). */
export const STYLES = `
.mrv-root { display: flex; flex-direction: column; gap: 4px; outline: none; font: 13px/1.4 var(--st-font, sans-serif); color: var(--st-text-color, #fafafa); }
.mrv-header { min-height: 1.4em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.mrv-stage { position: relative; width: 100%; background: #000; border-radius: 4px; overflow: hidden; touch-action: none; }
.mrv-canvas { display: block; cursor: crosshair; }
.mrv-message { position: absolute; inset: 0; display: none; flex-direction: column; gap: 10px; align-items: center; justify-content: center; color: #bbb; pointer-events: none; font-size: 15px; text-align: center; }
.mrv-message button { pointer-events: auto; background: var(--st-secondary-background-color, #262730); color: inherit; border: 1px solid rgba(250,250,250,.3); border-radius: 6px; padding: 4px 12px; cursor: pointer; font: inherit; }
.mrv-status { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; min-height: 2em; }
.mrv-classes { display: flex; flex-wrap: wrap; gap: 6px; }
.mrv-status button { background: var(--st-secondary-background-color, #262730); color: inherit; border: 1px solid rgba(250,250,250,.2); border-radius: 6px; padding: 3px 10px; cursor: pointer; font: inherit; }
.mrv-status button.mrv-chosen { border-color: var(--st-primary-color, #ff4b4b); background: rgba(255,75,75,.15); }
.mrv-error { color: #ff6b6b; }
.mrv-pending { color: #ffd166; }
.mrv-saved { color: #8bc34a; }
.mrv-unsaved { flex-basis: 100%; margin: 0; padding-left: 1.4em; color: #ff6b6b; }
.mrv-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; opacity: .75; font-size: 12px; }
.mrv-root kbd { border: 1px solid rgba(250,250,250,.35); border-radius: 3px; padding: 0 4px; font: 11px monospace; }
`;
