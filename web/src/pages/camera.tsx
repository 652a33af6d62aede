import Layout, { Notice } from "@/components/Layout";

export default function Page() {
  return (
    <Layout title="camera">
      <Notice>This page is being built.</Notice>
    </Layout>
  );
}
