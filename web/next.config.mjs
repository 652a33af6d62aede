// Sentinel's dashboard: a static export served by the Serve ingress under "/" (no Node server
// in production). The Pages Router is used on purpose: its exported pages carry no inline
// scripts (the App Router streams its payload through inline <script> tags), so the strict
// Content-Security-Policy (script-src 'self') holds for every page.
/** @type {import('next').NextConfig} */
const nextConfig = {
  output: "export",
  reactStrictMode: true,
  poweredByHeader: false,
  productionBrowserSourceMaps: false,
  images: { unoptimized: true },
  trailingSlash: false,
};

export default nextConfig;
