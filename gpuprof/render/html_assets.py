"""The HTML report's stylesheet and script, inlined into every page (no file, no network).

The script is small and hand-written: it sorts a table when a header is clicked, filters a
table's rows by a search box and draws the timeline on a canvas with wheel zoom and drag pan.
Data reaches it only as JSON read with ``JSON.parse`` and is shown with ``textContent``, so a
name from a user's file is never parsed as HTML.
"""

from __future__ import annotations

# default-src 'none': the page can load nothing at all, even if a name slipped through
CONTENT_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                  "script-src 'unsafe-inline'")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;
 padding:16px 24px;color:#1d232b;background:#fff}
h1{font-size:1.45em;margin:.2em 0 .6em;overflow-wrap:anywhere}
h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #d6dbe1;padding-bottom:.2em}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 1em}
dl.facts dt{font-weight:600;color:#4a5563}dl.facts dd{margin:0;overflow-wrap:anywhere}
nav.toc{font-size:.92em;margin:.4em 0 1em}nav.toc a{margin-right:12px;color:#2463b5}
p.note{margin:.25em 0;color:#39424e;overflow-wrap:anywhere}
pre{background:#f5f7f9;padding:8px;overflow-x:auto;font-size:12px}
input.filter{margin:.3em 0;padding:3px 6px;width:280px;font:inherit}
span.count{color:#6b7480;margin-left:8px;font-size:.9em}
table.data{border-collapse:collapse;width:100%;font-size:13px;margin:.3em 0 1em}
table.data th,table.data td{border:1px solid #dde2e8;padding:3px 6px;vertical-align:top}
table.data th{background:#eef2f6;cursor:pointer;user-select:none;text-align:left;position:sticky;top:0}
table.data th[aria-sort=ascending]::after{content:" \\25B2"}
table.data th[aria-sort=descending]::after{content:" \\25BC"}
table.data td{overflow-wrap:break-word}
table.data td.long{overflow-wrap:anywhere;min-width:14em}
table.data td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
table.data tr:nth-child(even) td{background:#fafbfc}
figure{margin:.6em 0}figure img{max-width:100%;border:1px solid #e3e7eb}
figcaption{color:#4a5563;font-size:.9em}
.timeline{position:relative;border:1px solid #d6dbe1}
.timeline canvas{display:block;width:100%;cursor:grab}
.timeline .tip{position:absolute;pointer-events:none;background:#1d232b;color:#fff;padding:3px 6px;
 font-size:12px;border-radius:3px;max-width:600px;overflow-wrap:anywhere;display:none}
"""

JS = r"""
(function(){
"use strict";
function cellValue(td){var v=td.getAttribute("data-v");return v===null?td.textContent:v;}
function sortTable(table,col,th){
  var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  var asc=th.getAttribute("aria-sort")!=="ascending";
  var numeric=th.classList.contains("num");
  rows.sort(function(a,b){
    var x=cellValue(a.cells[col]),y=cellValue(b.cells[col]);
    if(numeric){x=x===""?NaN:Number(x);y=y===""?NaN:Number(y);
      if(isNaN(x))return 1;if(isNaN(y))return -1;return asc?x-y:y-x;}
    return asc?x.localeCompare(y):y.localeCompare(x);});
  rows.forEach(function(r){body.appendChild(r);});
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){c.removeAttribute("aria-sort");});
  th.setAttribute("aria-sort",asc?"ascending":"descending");
}
function filterTable(table,query,count){
  var q=query.toLowerCase(),shown=0,rows=table.tBodies[0].rows;
  for(var i=0;i<rows.length;i++){
    var hit=rows[i].textContent.toLowerCase().indexOf(q)>=0;
    rows[i].style.display=hit?"":"none";if(hit)shown++;}
  count.textContent=shown+" of "+rows.length+" rows";
}
document.querySelectorAll("table.data").forEach(function(table){
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,col){
    th.addEventListener("click",function(){sortTable(table,col,th);});});
  var box=document.getElementById(table.id+"-filter"),count=document.getElementById(table.id+"-count");
  if(box)box.addEventListener("input",function(){filterTable(table,box.value,count);});
});
function drawTimeline(holder,data){
  var canvas=holder.querySelector("canvas"),tip=holder.querySelector(".tip");
  var ctx=canvas.getContext("2d"),rowH=18,labelW=200,axisH=22;
  var tracks=data.tracks,end=data.end_ms||1,view={a:0,b:end},drag=null;
  var colors=["#4e79a7","#f28e2b","#59a14f","#e15759","#76b7b2","#edc948","#b07aa1","#9c755f"];
  function tickStep(least){  // 1, 2 or 5 times a power of ten: labels >= 100 px apart
    var p=Math.pow(10,Math.floor(Math.log10(least))),m=[1,2,5,10];
    for(var i=0;i<m.length;i++){if(m[i]*p>=least)return m[i]*p;}return 10*p;}
  function size(){canvas.width=holder.clientWidth;canvas.height=axisH+tracks.length*rowH+4;}
  function x(t){return labelW+(t-view.a)/(view.b-view.a)*(canvas.width-labelW);}
  function draw(){
    canvas.setAttribute("data-view",view.a+" "+view.b);  // the shown window, for tests
    ctx.clearRect(0,0,canvas.width,canvas.height);ctx.font="11px sans-serif";ctx.fillStyle="#333";
    var step=tickStep((view.b-view.a)*100/(canvas.width-labelW));
    for(var t=Math.ceil(view.a/step)*step;t<=view.b;t+=step){
      var px=x(t);ctx.fillRect(px,axisH-6,1,6);ctx.fillText(+t.toPrecision(6)+" ms",px+2,axisH-8);}
    tracks.forEach(function(track,i){
      var y=axisH+i*rowH;ctx.fillStyle="#333";
      ctx.fillText(track.name.slice(0,34),4,y+13);
      ctx.fillStyle=colors[i%colors.length];
      track.spans.forEach(function(s){
        if(s[0]+s[1]<view.a||s[0]>view.b)return;
        var x0=Math.max(x(s[0]),labelW),x1=Math.min(x(s[0]+s[1]),canvas.width);
        ctx.fillRect(x0,y+2,Math.max(x1-x0,1),rowH-4);});});
  }
  function at(ev){
    var r=canvas.getBoundingClientRect(),px=ev.clientX-r.left,py=ev.clientY-r.top;
    var i=Math.floor((py-axisH)/rowH),t=view.a+(px-labelW)/(canvas.width-labelW)*(view.b-view.a);
    if(i<0||i>=tracks.length||px<labelW)return null;
    var tol=3*(view.b-view.a)/(canvas.width-labelW),hit=null;
    // the shortest span under the pointer (the innermost of nested NVTX ranges), else the
    // nearest one within 3 px (a kernel too short to aim at)
    var near=null,gap=tol;
    tracks[i].spans.forEach(function(s){
      if(t>=s[0]&&t<=s[0]+s[1]){if(!hit||s[1]<hit[1])hit=s;return;}
      var d=Math.min(Math.abs(t-s[0]),Math.abs(t-s[0]-s[1]));if(d<=gap){gap=d;near=s;}});
    hit=hit||near;
    return hit&&{span:hit,track:tracks[i],px:px,py:py};
  }
  canvas.addEventListener("wheel",function(ev){
    ev.preventDefault();var r=canvas.getBoundingClientRect();
    var f=Math.max(0,(ev.clientX-r.left-labelW)/(canvas.width-labelW)),t=view.a+f*(view.b-view.a);
    var k=ev.deltaY<0?0.8:1.25,w=Math.min((view.b-view.a)*k,end);
    view.a=Math.max(0,t-f*w);view.b=view.a+w;draw();},{passive:false});
  canvas.addEventListener("mousedown",function(ev){drag={x:ev.clientX,a:view.a,b:view.b};});
  window.addEventListener("mouseup",function(){drag=null;});
  canvas.addEventListener("mousemove",function(ev){
    if(drag){var d=(ev.clientX-drag.x)/(canvas.width-labelW)*(drag.b-drag.a);
      view.a=drag.a-d;view.b=drag.b-d;draw();return;}
    var hit=at(ev);
    if(!hit){tip.style.display="none";return;}
    tip.textContent=hit.track.name+": "+data.names[hit.span[2]]+" ("+(+hit.span[1].toPrecision(4))+" ms at "+
      (+hit.span[0].toPrecision(7))+" ms)";
    tip.style.left=Math.min(hit.px+12,canvas.width-300)+"px";tip.style.top=(hit.py+12)+"px";
    tip.style.display="block";});
  canvas.addEventListener("mouseleave",function(){tip.style.display="none";});
  canvas.addEventListener("dblclick",function(){view={a:0,b:end};draw();});
  window.addEventListener("resize",function(){size();draw();});
  size();draw();
}
document.querySelectorAll(".timeline").forEach(function(holder){
  var source=document.getElementById(holder.getAttribute("data-source"));
  drawTimeline(holder,JSON.parse(source.textContent));
});
})();
"""
